"""Datasets for examples and tests: small synthetic images made on the spot
(:mod:`daskbio.datasets.synthetic`) and the published images of the NETs study
(:mod:`daskbio.datasets.nets`)."""

from daskbio.datasets.nets import nets
from daskbio.datasets.synthetic import nuclei, write_nuclei

__all__ = ["nets", "nuclei", "write_nuclei"]
