"""One shape for every command (issue 13): the same options mean the same thing everywhere, every
command's help explains itself with examples, and the README's command table is the real one.

Modelled on sqlite-utils' test_docs.py: the registered commands are walked, not listed by hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from typer import _click as click  # Typer 0.29 vendors click
from typer.core import TyperGroup as ClickGroup
import pytest
import typer
from typer.testing import CliRunner

from tfkit.cli import COMMAND_AREAS, app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def _root_group() -> ClickGroup:
    group = typer.main.get_group(app)
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        group.get_command(ctx, name)  # loads every area
    return group


def _commands() -> list[tuple[str, click.Command]]:
    """Every runnable command as ('keys generate', command), groups walked."""
    out = []

    def walk(prefix: str, cmd: click.Command) -> None:
        if isinstance(cmd, ClickGroup):
            ctx = click.Context(cmd)
            if getattr(cmd, "invoke_without_command", False):
                out.append((prefix, cmd))
            for name in cmd.list_commands(ctx):
                walk(f"{prefix} {name}", cmd.get_command(ctx, name))
        else:
            out.append((prefix, cmd))

    group = _root_group()
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        walk(name, group.get_command(ctx, name))
    return out


COMMANDS = _commands()
NAMES = [name for name, _ in COMMANDS]


def _help(name: str) -> str:
    result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", NAMES)
def test_every_command_has_help_and_an_example(name):
    text = _help(name)
    cmd = dict(COMMANDS)[name]
    assert (cmd.help or "").strip(), f"{name} has no help text"
    assert "Examples:" in text, f"{name} --help has no Examples section"
    assert f"tfkit {name.split()[0]}" in text.split("Examples:", 1)[1], f"{name}: the examples do not run it"


@pytest.mark.parametrize("name", NAMES)
def test_help_shows_what_a_user_types(name):
    text = _help(name)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage  # Typer's {name} for a required argument
    for bad in ("<bool>", "<str>", "<path>", "<int>", "<float>", "list[", "<text>"):
        assert bad not in text, f"{name}: {bad} in its help"
    for arg in re.findall(r"\[OPTIONS\] (.*)", usage):
        for word in arg.split():
            assert word.strip("[].") == word.strip("[].").upper(), f"{name}: argument {word} is not upper case"


def test_json_takes_a_file_or_dash_in_every_command_that_has_it():
    having = []
    for name, cmd in COMMANDS:
        for param in cmd.params:
            if "--json" in getattr(param, "opts", ()):
                having.append(name)
                assert not param.is_flag, f"{name}: --json is a flag"
                assert param.metavar == "FILE|-", f"{name}: --json shows {param.metavar!r}"
    assert {"validate", "extract", "verify", "audit verify", "retention", "disclosure check", "summarise",
            "demo-data", "schemas list", "schemas show", "keys generate", "keys fingerprint", "pseudonymise",
            "link-keys", "link"} <= set(having)


def test_out_has_the_short_form_everywhere():
    for name, cmd in COMMANDS:
        for param in cmd.params:
            if "--out" in getattr(param, "opts", ()):
                assert "-o" in param.opts, f"{name}: --out has no -o"


def test_readme_command_table_matches_the_registered_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## What it does", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`tfkit ([a-z][a-z-]*)", table))
    registered = set(COMMAND_AREAS)
    assert documented == registered, f"README lists {sorted(documented - registered)} not registered; " \
                                     f"registered but not in the README: {sorted(registered - documented)}"


# --------------------------------------------------------------------------- --json FILE|- behaves alike


def test_json_dash_is_the_only_thing_on_stdout(tmp_path):
    for args in (["schemas", "list"], ["schemas", "show", "nis"], ["demo-data", "--out", str(tmp_path / "d"), "--people", "30"]):
        result = runner.invoke(app, [*args, "--json", "-"])
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)


def test_json_file_is_written_and_text_still_shown(tmp_path):
    target = tmp_path / "schemas.json"
    result = runner.invoke(app, ["schemas", "list", "--json", str(target)])
    assert result.exit_code == 0, result.output
    assert "nis" in result.stdout
    listed = json.loads(target.read_text())
    assert list(listed)[0] == "ok" and listed["ok"] is True  # an object opening with "ok", as every result
    assert {s["name"] for s in listed["schemas"]} >= {"nis", "fpd"}


def test_keys_fingerprint_prints_the_answer_even_when_quiet(tmp_path):
    key = tmp_path / "k" / "master.key"
    assert runner.invoke(app, ["keys", "generate", "-o", str(key)]).exit_code == 0
    quiet = runner.invoke(app, ["--quiet", "keys", "fingerprint", str(key)])
    loud = runner.invoke(app, ["keys", "fingerprint", str(key), "--json", "-"])
    assert quiet.exit_code == 0 and quiet.stdout.strip() == json.loads(loud.stdout)["fingerprint"]


def test_json_refuses_to_overwrite_an_input(tmp_path):
    csv = tmp_path / "cohort.csv"
    csv.write_text("a\n1\n")
    result = runner.invoke(app, ["validate", str(csv), "-s", "nis", "--json", str(csv)])
    assert result.exit_code == 2 and "overwrite" in result.output
    assert csv.read_text() == "a\n1\n"


# --------------------------------------------------------------------------- messages that misled


def test_keys_generate_makes_its_private_folder(tmp_path):
    key = tmp_path / "keys" / "master.key"
    result = runner.invoke(app, ["keys", "generate", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert (key.parent.stat().st_mode & 0o777) == 0o700 and (key.stat().st_mode & 0o777) == 0o600


def test_keys_generate_into_an_existing_folder_says_folder(tmp_path):
    result = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output and "already exists" not in result.output


def test_pseudonymise_of_a_folder_says_folder(tmp_path):
    result = runner.invoke(app, ["pseudonymise", str(tmp_path), "-s", "nis", "--project", "nis", "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2 and "is a folder" in result.output


def test_bad_period_on_the_command_line_blames_the_option(tmp_path):
    assert runner.invoke(app, ["init", str(tmp_path / "tfkit.toml")]).exit_code == 0
    result = runner.invoke(app, ["extract", "-c", str(tmp_path / "tfkit.toml"), "--period", "2019-H3"])
    assert result.exit_code == 2 and "--period" in result.output and "tfkit.toml" not in result.output


def test_malformed_fingerprint_is_a_usage_error_that_does_not_echo_it(tmp_path):
    secret = "4ffc27c1" + "0" * 48 + "5a38zz"
    result = runner.invoke(app, ["verify", str(tmp_path), "--expect-key-fingerprint", secret])
    assert result.exit_code == 2 and secret not in result.output
    result = runner.invoke(app, ["verify", str(tmp_path), "--expect-key-fingerprint", "zz"])
    assert result.exit_code == 2


def test_unknown_schema_suggests_the_close_one():
    result = runner.invoke(app, ["schemas", "show", "NIS"])
    assert result.exit_code == 2 and "did you mean 'nis'" in result.output


# --------------------------------------------------------------------------- a closed pipe is 141


@pytest.mark.parametrize("args", [["schemas", "show", "nis"], ["schemas", "list"], ["--help"]])
def test_closed_pipe_exits_141(args):
    script = ROOT / ".venv" / "bin" / "tfkit"
    exe = [str(script)] if script.exists() else [sys.executable, "-c", "from tfkit.entry import main; main()"]
    shell = " ".join([*map(str, exe), *args]) + " | head -c 1 >/dev/null; echo ${PIPESTATUS[0]}"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "80"})
    assert out.stdout.strip() in ("0", "141"), out  # 0 when everything fitted the pipe's buffer first
    if args != ["--help"]:
        assert out.stdout.strip() == "141" or len(out.stderr) == 0, out


def test_help_keeps_every_bracketed_word_of_its_text():
    for name, cmd in COMMANDS:
        text = " ".join(_help(name).split())
        for word in re.findall(r"\[([a-z_]+)\]", cmd.help or ""):
            assert f"[{word}]" in text, f"{name}: rich ate [{word}] from the help"


def test_json_into_a_missing_folder_is_refused_and_makes_no_folder(tmp_path):
    result = runner.invoke(app, ["schemas", "list", "--json", str(tmp_path / "nope" / "x.json")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "nope").exists()


def test_json_with_shown_values_is_private(tmp_path):
    csv = tmp_path / "cohort.csv"
    csv.write_text("person_id,forename\n1,ANNA\n")
    runner.invoke(app, ["validate", str(csv), "-s", "nis", "--show-values", "--json", str(tmp_path / "r.json")])
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o600
    runner.invoke(app, ["validate", str(csv), "-s", "nis", "--json", str(tmp_path / "m.json")])
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644  # masked: like any report


def test_spark_engine_without_pyspark_is_one_message_exit_2(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    a = tmp_path / "a.csv"
    a.write_text("record_id,forename\n1,A\n")
    for args in (["link", str(a), str(a), "-o", str(tmp_path / "l")],
                 ["link-keys", str(a), str(a), "-o", str(tmp_path / "k.parquet")]):
        result = runner.invoke(app, [*args, "--engine", "spark"])
        assert result.exit_code == 2 and "tfkit[spark]" in result.output, result.output


def test_link_refuses_a_file_for_out_before_the_run(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("record_id,forename\n1,A\n")
    result = runner.invoke(app, ["link", str(a), str(a), "-o", str(a)])
    assert result.exit_code == 2 and "must be a folder" in result.output
    result = runner.invoke(app, ["link", str(a), str(a), "-o", str(tmp_path / "o"), "--report", str(tmp_path)])
    assert result.exit_code == 2 and "--report names a folder" in result.output and not (tmp_path / "o").exists()


def test_link_help_states_the_models_defaults():
    from tfkit.linkage.model import LinkageModel

    text = " ".join(_help("link").split())
    threshold = LinkageModel.default().settings.threshold
    assert f"{threshold} in the built-in model" in text and "0.4 in the built-in model" not in text


def test_an_extract_given_as_the_master_key_is_named_not_chmodded(tmp_path):
    csv = tmp_path / "cohort.csv"
    csv.write_text("person_id,forename\n1,ANNA\n")
    result = runner.invoke(app, ["pseudonymise", str(csv), "-s", "nis", "--project", "nis", "-o",
                                 str(tmp_path / "p.parquet"), "--key", str(csv)])
    assert result.exit_code == 2 and "chmod" not in result.output and "malformed key file" in result.output


def test_the_key_environment_variable_is_the_keys_modules():
    from tfkit.commands.options import KEY_ENV_VAR
    from tfkit.keys import KEY_ENV_VAR as KEYS_ENV_VAR

    assert KEY_ENV_VAR == KEYS_ENV_VAR


def test_usage_lines_end_variadic_arguments_once_and_global_options_say_where_they_go():
    from typer.testing import CliRunner

    from tfkit.cli import app

    runner = CliRunner()
    usage = runner.invoke(app, ["validate"]).output
    assert "EXTRACT..." in usage and "EXTRACT...." not in usage
    res = runner.invoke(app, ["validate", "x.csv", "--quiet"])
    flat = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "put it before the command" in flat and "tfkit --quiet validate" in flat
