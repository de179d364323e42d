"""What a Job tells the cluster it runs on about one Task: running, computed, loaded
(committed by another run meanwhile) or failed.

On a ``distributed`` worker each event goes to the scheduler as a ``daskbio`` event
(``Worker.log_event``), where the dashboard plugin (:mod:`daskbio.monitor.plugin`) counts
it in its ``SchedulerPlugin.log_event``; the scheduler's own task states cannot tell a
Task that failed in a run that keeps going (its Job returns normally) from one that was
computed. Elsewhere (threads, processes) the local progress
display reads the Jobs' results instead, and this does nothing.
"""

from __future__ import annotations

import sys

TOPIC = "daskbio"
STATES = ("running", "computed", "loaded", "failed")


def report(key: str, name: str, state: str) -> None:
    """Tell the scheduler that Task ``key`` of function ``name`` is in ``state``."""
    if "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return
    worker.log_event(TOPIC, {"key": key, "name": name, "state": state})
