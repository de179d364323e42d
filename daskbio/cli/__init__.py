"""The ``daskbio`` command: one module per subcommand, each registering itself on ``main``.

A command's module is imported when the command runs (``daskbio run`` imports only
``cli/run.py``), so that a fully cached run starts fast however many commands there are.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any

import click

from daskbio import __version__
from daskbio.cache import CacheWriteError
from daskbio.cache.signing import KeyFileError
from daskbio.cli._common import error, task_failed, verbose_option
from daskbio.graph.job import TaskFailed, TasksFailed
from daskbio.pipeline import PipelineError, SharedIdentity


class Group(click.Group):
    """A group of commands, each taking ``-v`` (``daskbio`` itself, ``daskbio key``)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.append(verbose_option())
        super().add_command(cmd, name)


class _Commands(Group):
    """The command group. Every command takes ``-v``; a cache that cannot be written, a
    key that cannot be read, a pipeline file that does not run or a Task that fails while
    it loads is one ``Error:`` message, whatever the command, not a traceback (unless
    ``-v``)."""

    def list_commands(self, ctx: click.Context | None) -> list[str]:
        return sorted(_modules())

    def get_command(self, ctx: click.Context | None, name: str) -> click.Command | None:
        module = _modules().get(name)
        if module is not None:
            importlib.import_module(f"{__name__}.{module}")
        return self.commands.get(name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            near = difflib.get_close_matches(args[0], self.list_commands(ctx), n=1)
            if not near:
                raise
            raise click.UsageError(
                f"no command {args[0]!r}: did you mean {near[0]!r}?", ctx
            ) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CacheWriteError, KeyFileError, PipelineError, SharedIdentity, TasksFailed) as e:
            raise error(str(e), e) from None
        except TaskFailed as e:
            # Under a value() in the pipeline file, as it is loaded.
            raise error(task_failed(e), e) from None


def _modules() -> dict[str, str]:
    """The module of each command, by command name: this package's public modules."""
    found = pkgutil.iter_modules(__path__)
    return {m.name.replace("_", "-"): m.name for m in found if not m.name.startswith("_")}


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="daskbio")
def main() -> None:
    """Run Jug-style pipelines of hashed Tasks on Dask, with a persistent cache.

    \b
    Example:
      daskbio run pipeline.py          # compute what is not cached yet
      daskbio status pipeline.py       # what is done, failed, waiting, stale
    """


# ``daskbio -v run ...`` as well as ``daskbio run ... -v``.
main.params.append(verbose_option())


def commands() -> dict[str, click.Command]:
    """Every command, by name (each module loaded)."""
    return {name: main.get_command(None, name) for name in main.list_commands(None)}
