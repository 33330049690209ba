"""Output modes: a progress bar only at a terminal, shared when nested; nothing decorative in cron."""

import io
import json
import subprocess
import sys

from rich.console import Console

from tfkit import console


def test_nested_progress_shares_one_live_bar(monkeypatch):
    monkeypatch.setattr(console, "interactive", lambda: True)
    monkeypatch.setattr(console, "stderr_console", lambda: Console(file=io.StringIO(), force_terminal=True))
    with console.progress() as outer:
        with console.progress() as inner:
            assert inner is outer
        assert console._LIVE_BAR is outer  # the nested exit does not end the outer bar
    assert console._LIVE_BAR is None and console._LIVE_CONSOLE is None


def test_no_bar_when_not_a_terminal(capsys):
    with console.progress() as bar:  # pytest's stderr is not a terminal
        task = bar.add_task("work", total=3)
        bar.advance(task)
    console.log("done", "finished")
    err = capsys.readouterr().err
    assert "━" not in err and err.strip() == "finished"


def test_quiet_and_json_modes(capsys):
    console.configure(quiet=True)
    console.log("step", "chatter")
    console.log("problem", "a warning", level="warning")
    assert capsys.readouterr().err.strip() == "a warning"
    console.configure(log_format="json")
    console.log("step", "chatter", rows=3)
    record = json.loads(capsys.readouterr().err)
    assert record["event"] == "step" and record["rows"] == 3


def test_a_quiet_run_off_a_terminal_never_loads_rich(tmp_path):
    """Cron: plain log lines, no progress bar, so no rich import (start-up time)."""
    extract = tmp_path / "x.csv"
    extract.write_text("a,b\n1,2\n", encoding="utf-8")
    code = (
        "import sys; from tfkit.cli import main\n"
        f"sys.argv = ['tfkit', '--quiet', 'validate', {str(extract)!r}, '--schema', 'nis']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('rich' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
    assert "error:" in out.stderr  # the failure is still reported, as a plain line
