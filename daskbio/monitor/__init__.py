"""Following a run: per-function counts of its Tasks (:mod:`~daskbio.monitor.tally`), the
``/daskbio`` page on the Dask dashboard (:mod:`~daskbio.monitor.plugin`), and the progress
shown on a terminal, in a log or in a notebook (:mod:`~daskbio.monitor.display`), fed by
:mod:`~daskbio.monitor.watch` while :func:`daskbio.compute` runs.

Nothing here is imported by a fully cached run.
"""
