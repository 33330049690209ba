"""The bad-input corpus (issue 14, build 6), through every reading command. Counted per case:
0 tracebacks, 0 internal errors, 0 hangs (each run has a time limit), 0 lost rows (every row read
is valid or quarantined)."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from tests.badinput import make_corpus
from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (shared fixtures)
from tfkit.cli import app

LIMIT = 60  # seconds per run: a hang fails the case instead of stalling CI

# case: (allowed exit codes, rows the file holds when it is read, words the refusal must say)
EXPECTED = {
    "empty.csv": ({2}, None, "is empty"),
    "header_only.csv": ({2}, None, "no data rows"),
    "ragged.csv": ({2}, None, "ragged"),
    "duplicate_headers.csv": ({2}, None, "more than once"),
    "nul.csv": ({2}, None, "NUL"),
    "invalid_utf8.csv": ({0, 1, 2}, 1, ""),
    "utf16.csv": ({0}, 1, ""),
    "cr_only.csv": ({0}, 2, ""),
    "long_line.csv": ({0, 1}, 1, ""),
    "wide.csv": ({1, 2}, 1, ""),
    "text_as.xlsx": ({2}, None, "not a .xlsx"),
    "rtl_zero_width.csv": ({1}, 1, ""),  # a surname of zero-width joiners only is missing
    "impossible_dates.csv": ({1}, 2, ""),  # 31/02 and a DOB of "1": both quarantined
    "unicode_päth_名前.csv": ({0}, 1, ""),
    "bomb.xlsx": ({2}, None, "zip bomb"),
    "formula.xlsx": ({0, 1}, 1, ""),
    "nested.parquet": ({2}, None, "Struct"),
    "duration.parquet": ({2}, None, "Duration"),
    "float_id.parquet": ({1, 2}, None, ""),
    "fifo.csv": ({2}, None, "FIFO"),
    "folder.csv": ({2}, None, "is a folder"),
    "loop_a.csv": ({2}, None, "symlink loop"),
}
REFUSED_BEFORE_READING = ("fifo.csv", "folder.csv", "loop_a.csv")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def run(*args):
    """The CLI in this process, on a thread with a time limit (a hang is a failure, not a stuck run)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", CliRunner().invoke(app, [str(a) for a in args])),
                              daemon=True)
    thread.start()
    thread.join(LIMIT)
    assert not thread.is_alive(), f"hang: tfkit {' '.join(map(str, args))} ran over {LIMIT} s"
    result = box["r"]
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def test_the_corpus_is_complete(corpus):
    assert set(corpus) == set(EXPECTED)


@pytest.mark.parametrize("case", list(EXPECTED))
def test_validate(corpus, case):
    codes, rows, words = EXPECTED[case]
    result = run("validate", corpus[case], "--schema", "nis", "--json", "-")
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert words in result.output, result.output
    if result.exit_code in (0, 1):
        summary = json.loads(result.stdout)["summary"]
        assert summary["rows_in"] == summary["rows_valid"] + summary["rows_quarantined"]  # no lost rows
        if rows is not None:
            assert summary["rows_in"] == rows, summary
        if case in ("impossible_dates.csv", "rtl_zero_width.csv"):
            assert summary["rows_quarantined"] == rows, summary  # 31/02, a DOB of "1", an invisible surname


@pytest.mark.parametrize("case", REFUSED_BEFORE_READING)
def test_pseudonymise_and_link_refuse_before_reading(corpus, case, tmp_path, contract_key_file):
    words = EXPECTED[case][2]
    pseud = run("pseudonymise", corpus[case], "--schema", "nis", "--project", "nis", "--key", contract_key_file,
                "--allow-test-key", "--out", tmp_path / "out.parquet")
    assert pseud.exit_code == 2 and words in pseud.output, pseud.output
    link = run("link", corpus[case], corpus["unicode_päth_名前.csv"], "--out", tmp_path / "linked")
    assert link.exit_code == 2 and words in link.output, link.output


@pytest.mark.parametrize("case", ["fifo.csv", "cr_only.csv", "duration.parquet", "bomb.xlsx"])
def test_extract(corpus, config, case):  # noqa: F811
    text = config.read_text()
    cohort = next(line.split('"')[1] for line in text.splitlines() if line.strip().startswith("path") and "cohort" in line)
    config.write_text(text.replace(cohort, str(corpus[case])))
    result = run("extract", "--config", config)
    assert result.exit_code in ({0, 1} if case == "cr_only.csv" else {2}), result.output
