"""Output modes: a progress bar only at a terminal, shared when nested; nothing decorative in cron."""

import io
import json

from tfkit import console


def test_nested_progress_shares_one_live_bar(monkeypatch):
    monkeypatch.setattr(console, "interactive", lambda: True)
    monkeypatch.setattr(console, "stderr_console", lambda: console.Console(file=io.StringIO(), force_terminal=True))
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
