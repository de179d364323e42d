"""The ``daskbio`` command: one module per subcommand, each registering itself on ``main``."""

from __future__ import annotations

from typing import Any

import click

from daskbio import __version__
from daskbio.cache import CacheWriteError
from daskbio.cache.signing import KeyFileError


class _Commands(click.Group):
    """The command group; a cache that cannot be written or a key that cannot be read is
    one ``Error:`` line, whatever the command, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CacheWriteError, KeyFileError) as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="daskbio")
def main() -> None:
    """Run Jug-style pipelines of hashed Tasks on Dask, with a persistent cache.

    \b
    Example:
      daskbio run pipeline.py          # compute what is not cached yet
      daskbio status pipeline.py       # what is done, failed, waiting, stale
    """


# Each module adds its command to ``main`` when imported.
from daskbio.cli import (  # noqa: E402
    check,
    cleanup,
    invalidate,
    key,
    run,
    shell,
    sleep_until,
    status,
    submit,
    verify,
)

__all__ = [
    "check",
    "cleanup",
    "invalidate",
    "key",
    "main",
    "run",
    "shell",
    "sleep_until",
    "status",
    "submit",
    "verify",
]
