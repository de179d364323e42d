"""``python -m daskbio`` is the ``daskbio`` command."""

from daskbio.cli import main

if __name__ == "__main__":
    main()
