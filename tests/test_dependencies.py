"""Every third-party module tfkit imports is one of its core dependencies, so the README's
`pip install -e .` gives a working tfkit on a fresh machine (numpy once came only by accident)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_core_dependencies_cover_every_import():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_normalise(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    # The optional engines' packages may import their extra's modules (tfkit.engine.spark: pyspark).
    extras = {"engine/spark": {_normalise(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0])
                               for d in project["optional-dependencies"]["spark"]}}
    distributions = packages_distributions()
    missing = {}
    for path in sorted((ROOT / "tfkit").rglob("*.py")):
        allowed = declared.union(*(v for k, v in extras.items() if path.relative_to(ROOT / "tfkit").as_posix().startswith(k)))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "tfkit" or top in sys.stdlib_module_names:
                    continue
                dists = {_normalise(d) for d in distributions.get(top, [top])}
                if not dists & allowed:
                    missing.setdefault(top, path.relative_to(ROOT).as_posix())
    assert not missing, f"imported but not a core dependency in pyproject.toml: {missing}"
