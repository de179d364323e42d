"""The README and docs/commands.md list every command as it is (issue 11, item 7)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from daskbio.cli import commands

ROOT = Path(__file__).resolve().parents[1]


def _make_commands():
    spec = importlib.util.spec_from_file_location("make_commands", ROOT / "docs/make_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_commands_page_is_what_the_commands_say():
    assert (ROOT / "docs/commands.md").read_text() == _make_commands().page(), (
        "docs/commands.md is out of date: run python docs/make_commands.py"
    )


def test_the_readme_shows_every_command():
    readme = (ROOT / "README.md").read_text()
    shown = set(re.findall(r"^daskbio ([a-z-]+)", readme, flags=re.MULTILINE))
    assert shown >= set(commands()), sorted(set(commands()) - shown)
