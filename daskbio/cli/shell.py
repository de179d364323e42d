"""``daskbio shell``: an interactive shell with a pipeline's names loaded."""

from __future__ import annotations

import code
from pathlib import Path

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument


@main.command()
@pipeline_argument
@cache_option
def shell(file: Path, cache: str | None) -> None:
    """Open a Python shell with FILE's names loaded and value() at hand (Jug's shell).

    Nothing is computed: value(task) loads cached results and says which are missing.

    \b
    Example:
      daskbio shell examples/segmentation/pipeline.py
      >>> value(summary)
    """
    from daskbio import compute, value

    with open_pipeline(file, cache) as (pipeline, store):
        names = dict(pipeline.namespace)
        names.update(value=value, compute=compute, store=store, tasks=pipeline.tasks)
        banner = (
            f"daskbio shell: {file} loaded, {len(pipeline.tasks)} Tasks; "
            f"value(task) gives a cached result. Cache: {store.location}"
        )
        code.interact(banner=banner, local=names, exitmsg="")
