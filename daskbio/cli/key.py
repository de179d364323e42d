"""``daskbio key``: the key that signs cache entries (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import click

from daskbio.cache.signing import KeyFileError, Signer, key_file, load_key, share_key
from daskbio.cli import Group, main


@main.group(cls=Group)
def key() -> None:
    """Show or share the key that signs cache entries.

    Entries signed with another key are never used: a lab sharing a cache shares one key.

    \b
    Example:
      daskbio key show
      daskbio key share /shared/lab/daskbio.key --group lab
    """


@key.command()
def show() -> None:
    """Print where the key is and its id (never the key itself).

    \b
    Example:
      daskbio key show
    """
    try:
        signer = Signer(load_key())
    except KeyFileError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Key file: {key_file()}")
    click.echo(f"Key id:   {signer.key_id}")


@key.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--group", required=True, help="The Unix group that may read the key.")
def share(target: Path, group: str) -> None:
    """Create a new key at TARGET, readable by GROUP, for a cache the group shares.

    Everyone in the group then sets the Dask config key daskbio.key-file (or the
    variable DASKBIO_KEY_FILE) to TARGET. Your own key stays yours.

    \b
    Example:
      daskbio key share /shared/lab/daskbio.key --group lab
    """
    try:
        written = share_key(target, group)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Wrote {written} (mode 0640, group {group}). Each member of {group} sets:")
    click.echo(f"  export DASKBIO_KEY_FILE={written}")
    click.echo(f"  (or daskbio: {{key-file: {written}}} in ~/.config/dask/daskbio.yaml)")
