"""``daskbio graph``: draw the Task graph, collapsed by function or (``--full``) every Task."""

from __future__ import annotations

from pathlib import Path

import click

from daskbio import diagram
from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument


@main.command()
@pipeline_argument
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to draw: .svg or .png (drawn by graphviz's dot), or .dot (graphviz's text).",
)
@click.option(
    "--full",
    is_flag=True,
    help=f"One node per Task (labelled function and short hash), for pipelines of at most "
    f"{diagram.FULL_LIMIT:,} Tasks.",
)
@cache_option
def graph(file: Path, output: Path, full: bool, cache: str | None) -> None:
    """Draw FILE's Task graph: one box per function with its counts (total, done, stale,
    failed, running, waiting), coloured by cache state (green all done, amber partly done
    or running, red some failed, grey none done; a dashed purple border when results are
    stale), and arrows from the functions whose results others use, labelled with how many
    Task-to-Task dependencies they stand for.

    \b
    Example:
      daskbio graph examples/segmentation/pipeline.py -o graph.svg
      daskbio graph pipeline.py --full -o tasks.png
    """
    try:
        diagram.format_of(output)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    with open_pipeline(file, cache) as (pipeline, store):
        try:
            if full:
                drawn = diagram.full(pipeline.tasks, store)
            else:
                drawn = diagram.collapsed(pipeline.tasks, store)
        except diagram.TooManyTasks as e:
            raise click.ClickException(
                f"{e}: leave out --full to draw them collapsed by function"
            ) from None
        if pipeline.barrier is not None:
            click.echo(
                f"Note: only the Tasks before a value() call are known: {pipeline.barrier}.",
                err=True,
            )
    try:
        diagram.write(drawn, output)
    except diagram.DotNotFound as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {output}: {e.strerror}") from None
    shown = "Tasks" if full else "functions"
    click.echo(f"Wrote {output} ({len(drawn.nodes)} {shown}, {len(drawn.edges)} edges)")
