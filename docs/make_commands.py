"""Write docs/commands.md: every ``daskbio`` command with its ``--help``.

Run ``python docs/make_commands.py`` after changing a command; a test checks that the page
is up to date, so the docs list every command as it is.
"""

from __future__ import annotations

from pathlib import Path

import click

from daskbio.cli import commands, main

PAGE = Path(__file__).with_name("commands.md")

INTRO = """\
# The `daskbio` command

Every command takes `-v` (full tracebacks, and what daskbio does, from the `daskbio` logger)
and `-vv` (in detail); without it an error you can cause is a short `Error: ...`: exit
status 1 for a pipeline file that does not run, a cache that cannot be written or a Task
that failed, 2 for a misspelt command or option (click's usage errors).
Where a command takes FILE, it is the pipeline file, `pipeline.py` by default; its cache is
`<stem>.daskbio/` beside it unless `--cache` (or the Dask config key `daskbio.cache`) says
otherwise.

This page is made by `python docs/make_commands.py` from the commands' own `--help`.
"""


def help_text(command: click.Command, name: str) -> str:
    """What ``daskbio NAME --help`` prints, at a fixed width."""
    parent = click.Context(main, info_name="daskbio", terminal_width=100, max_content_width=100)
    ctx = click.Context(command, parent=parent, info_name=name, terminal_width=100)
    return command.get_help(ctx)


def page() -> str:
    """The whole page."""
    parts = [INTRO]
    for name, command in commands().items():
        summary = command.get_short_help_str(limit=100)
        parts.append(
            f"## daskbio {name}\n\n{summary}\n\n```text\n{help_text(command, name)}\n```\n"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    PAGE.write_text(page())
    print(f"wrote {PAGE}")
