"""``python -m daskbio`` is the ``daskbio`` command."""

from daskbio.cli import main

main()
