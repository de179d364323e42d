"""The README and docs/commands.md list every command as it is (issue 11, item 7)."""

from __future__ import annotations

import re
from pathlib import Path

from daskbio.cli import commands

ROOT = Path(__file__).resolve().parents[1]


def test_docs_commands_page_has_every_command_and_option():
    # Compared by names, not text: click's wrapping differs between its versions.
    page = (ROOT / "docs/commands.md").read_text()
    sections = dict(re.findall(r"^## daskbio (\S+)\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    for name, command in commands().items():
        assert name in sections, f"{name}: run python docs/make_commands.py"
        for param in command.params:
            for option in param.opts:
                if option.startswith("--"):
                    assert option in sections[name], f"{name} {option}: run docs/make_commands.py"
    assert len(sections) == len(commands())


def test_the_readme_shows_every_command():
    readme = (ROOT / "README.md").read_text()
    shown = set(re.findall(r"^daskbio ([a-z-]+)", readme, flags=re.MULTILINE))
    assert shown >= set(commands()), sorted(set(commands()) - shown)
