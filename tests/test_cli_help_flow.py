"""Help text flows as prose: Typer 0.29's rich help keeps a docstring's single line breaks, so every
wrapped docstring line showed as a ragged break in `--help` ("... quarantine folder with" / "their
reasons ..."). Paragraphs are reflowed once, at registration; \\b blocks (examples) keep their lines."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.test_cli_shape import COMMANDS, NAMES
from tfkit.cli import app


@pytest.mark.parametrize("name", NAMES)
def test_help_paragraphs_have_no_hard_line_breaks(name):
    command = dict(COMMANDS)[name]
    for paragraph in (command.help or "").split("\n\n"):
        if not paragraph.lstrip().startswith("\b"):
            assert "\n" not in paragraph.strip(), (name, paragraph)


def test_extract_help_reads_as_sentences():
    out = CliRunner().invoke(app, ["extract", "--help"], env={"COLUMNS": "300"}).output
    lines = [line.strip() for line in out.splitlines()]
    assert any("quarantine folder with their reasons" in line for line in lines)
    assert "tfkit extract --demo --out demo-output" in lines  # the examples keep their own lines
