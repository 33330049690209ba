"""What a new user met in the init -> extract -> verify pass (each a fix with its test)."""

from __future__ import annotations

from typer.testing import CliRunner

from tfkit.cli import app


def test_a_missing_key_file_says_the_command_that_makes_it_there(tmp_path):
    config = tmp_path / "tfkit.toml"
    assert CliRunner().invoke(app, ["init", str(config)]).exit_code == 0
    res = CliRunner().invoke(app, ["extract", "-c", str(config)])
    assert res.exit_code == 2 and "key file not found" in res.output
    assert "tfkit keys generate --out " in res.output and "keys/master.key" in res.output.split("hint:")[1]
    # a key pasted where the path belongs is never echoed, not even in the hint
    key = "ab" * 32
    res = CliRunner().invoke(app, ["keys", "fingerprint", key])
    assert res.exit_code == 2 and key not in res.output and "--out FILE" in res.output
