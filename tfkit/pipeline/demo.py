"""`tfkit extract --demo`: the whole pipeline on generated synthetic data, with demo keys.

Layout of the demo folder (everything the demo needs, nothing outside it):

    <out>/inputs/        generated extracts (tfkit.demo, fixed seed) and the consent-withdrawal list
    <out>/keys/          demo-master.key (0600), demo-signing.key (0600), demo-signing.pub
    <out>/tfkit.toml     the config the demo ran with (demo = true): a worked example to copy
    <out>/quarantine/    LA-internal quarantine files
    <out>/packages/      the package, its report.html, and the audit log

Keys are made once and reused, so a rerun reproduces byte-identical data files. Everything made
with them says demo = true (manifest.json, bag-info.txt, verify's report).
"""

from __future__ import annotations

import json
from pathlib import Path

from tfkit import console
from tfkit.errors import UsageError
from tfkit.config import load_config
from tfkit.package.signing import generate_signing_key_pair, public_key_path_for
from tfkit.pipeline import adapters
from tfkit.pipeline.extract import ExtractResult, run_extract
from tfkit.pseudonymise.contract import generate_key_file

DEMO_SEED = 20191231
DEMO_PEOPLE = 2_000
DEMO_LA = "E09000031"
DEMO_PERIOD = "2019-H2"
# Partner extracts linked to the cohort in the demo. (dwp.csv has no sex column, which the default
# linkage model compares, so it is generated but not packaged.)
DEMO_PARTNERS = ("police", "school_attendance")
DEMO_CONFIG_HEADER = "# Written by tfkit extract --demo"


def _demo_config(inputs: dict[str, Path], out: Path, partners: tuple[str, ...]) -> str:
    cohort = inputs.get("cohort", out / "inputs" / "cohort.csv")
    withdrawals = inputs.get("consent_withdrawals")
    lines = [
        f"{DEMO_CONFIG_HEADER}: synthetic data and demo keys. Copy it as a starting point",
        "# (or run tfkit init for a commented one); never use demo keys for a real return.",
        f'la_code = "{DEMO_LA}"', 'return = "nis"', f'period = "{DEMO_PERIOD}"', "demo = true", "",
        "[[sources]]", 'name = "cohort"', f'path = "{cohort.relative_to(out).as_posix()}"', 'schema = "nis"', "",
    ]
    for partner in partners:
        if partner in inputs:
            lines += ["[[sources]]", f'name = "{partner}"', f'path = "{inputs[partner].relative_to(out).as_posix()}"',
                      f'schema = "{partner}"', ""]
    if any(p in inputs for p in partners):
        lines += ["[linkage]", "enabled = true         # link partner records to cohort persons (default model)", ""]
    lines += ["[pseudonymise]", 'project = "nis"', 'key_file = "keys/demo-master.key"', "",
              "[signing]", 'key_file = "keys/demo-signing.key"', ""]
    if withdrawals is not None:
        lines += ["[consent]", f'withdrawals = "{withdrawals.relative_to(out).as_posix()}"', ""]
    lines += ["[output]", 'root = "packages"', 'quarantine_dir = "quarantine"', "",
              "[retention]", "days = 1826", "",
              "[disclosure]", 'policy = "generalise"  # widen quasi-identifiers until k-anonymous (k=10)', ""]
    return "\n".join(lines)


def prepare_demo(out: Path, *, seed: int = DEMO_SEED, people: int = DEMO_PEOPLE,
                 partners: tuple[str, ...] = DEMO_PARTNERS) -> Path:
    """Generate inputs, keys and config under `out` (keys reused when present). Returns the config path.

    `partners`: partner extracts packaged and linked to the cohort (() for the cohort alone)."""
    out.mkdir(parents=True, exist_ok=True)
    keys = out / "keys"
    keys.mkdir(exist_ok=True, mode=0o700)
    master = keys / "demo-master.key"
    if not master.exists():
        generate_key_file(master)
    signing = keys / "demo-signing.key"
    if not signing.exists():
        public_key_path_for(signing).unlink(missing_ok=True)
        generate_signing_key_pair(signing)
    inputs_dir = out / "inputs"
    inputs_dir.mkdir(exist_ok=True)
    inputs = adapters.write_demo_inputs(inputs_dir, seed=seed, people=people)
    config_path = out / "tfkit.toml"
    config_path.write_text(_demo_config(inputs, out, partners), encoding="utf-8")
    return config_path


def _refuse_real_files(out: Path) -> None:
    """The demo rewrites <out>/tfkit.toml and replaces its package: never over a real config or package."""
    hint = "give --demo a new folder of its own, e.g. --out demo-output"
    config = out / "tfkit.toml"
    if config.is_file() and not config.read_text(encoding="utf-8", errors="replace").startswith(DEMO_CONFIG_HEADER):
        raise UsageError("holds a tfkit.toml that tfkit extract --demo did not write; the demo would overwrite it",
                         file=out, hint=hint)
    manifest = out / "packages" / f"{DEMO_LA}_nis_{DEMO_PERIOD}" / "manifest.json"
    if manifest.is_file():
        try:
            demo = json.loads(manifest.read_text(encoding="utf-8")).get("demo") is True
        except (ValueError, AttributeError):
            demo = False
        if not demo:
            raise UsageError("holds a package that is not a demo package; the demo would replace it",
                             file=manifest.parent, hint=hint)


def run_demo(out: str | Path, *, seed: int = DEMO_SEED, people: int = DEMO_PEOPLE) -> ExtractResult:
    """Run the whole pipeline on demo data. A rerun replaces the demo package (it is disposable)."""
    out = Path(out).absolute()
    _refuse_real_files(out)
    console.log("demo", f"generating demo data and demo keys in {out}", out=str(out))
    config = load_config(prepare_demo(out, seed=seed, people=people))
    return run_extract(config, force=True)
