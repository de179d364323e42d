"""daskbio's page on the Dask dashboard: a scheduler plugin that counts each run's Tasks
by function and serves them at ``/daskbio`` (HTML) and ``/daskbio/json``.

The client's plan comes as a ``daskbio`` event (``Client.log_event``) before its graph;
the Jobs' own events (:mod:`daskbio.graph.events`) say which Tasks run, are computed,
fail or were committed by another run; the chunk writes of array Tasks are counted from
the scheduler's task transitions. Each new plan starts the counts afresh: the page shows
the latest run (one :func:`daskbio.compute` call, or a ``daskbio run``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

from daskbio.graph.events import TOPIC
from daskbio.monitor import html
from daskbio.monitor.keys import CHUNK_PREFIX, parse
from daskbio.monitor.tally import Summary, Tally

NAME = "daskbio-dashboard"
#: Where the page and its JSON are, under the dashboard's address (and any prefix of it).
ROUTES = (r"/(?:.+/)?daskbio/?", r"/(?:.+/)?daskbio/json")

logger = logging.getLogger(__name__)


class Dashboard(SchedulerPlugin):
    """Counts the Tasks of the latest run by function and serves the counts as a page.

    Registered by :func:`attach` (once per scheduler: registering again keeps the one
    there, with its counts).
    """

    name = NAME
    idempotent = True

    async def start(self, scheduler: Any) -> None:
        # Made here, on the scheduler: a Tally's lock does not pickle.
        self.tally = Tally()
        application = getattr(scheduler, "http_application", None)
        if application is None:  # a scheduler without an HTTP server
            return
        page, data = ROUTES
        application.add_handlers(
            r".*", [(data, _JSON, {"tally": self.tally}), (page, _Page, {"tally": self.tally})]
        )

    def log_event(self, topic: str, msg: Any) -> None:
        if topic != TOPIC or not isinstance(msg, dict):
            return
        if "plan" in msg:
            self.tally.plan({name: tuple(n) for name, n in msg["plan"].items()})
        elif "found" in msg:
            self.tally.found(msg["found"])
        else:
            self.tally.task(msg["key"], msg["name"], msg["state"])

    def update_graph(self, scheduler: Any, *, tasks: list | None = None, **kwargs: Any) -> None:
        for key in tasks or ():
            if (found := _chunk(key)) is not None:
                self.tally.chunk(found.name, key, written=False)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory" and (found := _chunk(key)) is not None:
            self.tally.chunk(found.name, key, written=True)


def _chunk(key: Any) -> Any:
    """The parsed key if ``key`` is a chunk write (checked cheaply first: the scheduler
    calls the plugin on every transition of every key)."""
    if not isinstance(key, str) or not key.startswith(CHUNK_PREFIX):
        return None
    found = parse(key)
    return found if found is not None and found.kind == "chunk" else None


class _Handler(web.RequestHandler):
    def initialize(self, tally: Tally) -> None:
        self.tally = tally


class _Page(_Handler):
    def get(self) -> None:
        self.write(html.page(self.tally.summary()))


class _JSON(_Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(as_json(self.tally.summary())))


def as_json(summary: Summary) -> dict[str, Any]:
    """What ``/daskbio/json`` serves: the summary's data and rows, and its HTML table."""
    return {
        **summary.to_json(),
        "html": html.table(summary),
        "elapsed_text": html.seconds(summary.elapsed),
    }


def attach(client: Any) -> str | None:
    """Register the dashboard plugin on ``client``'s scheduler (if it is not there yet);
    the address of the page, or None when the scheduler cannot have it (it cannot import
    daskbio, say), which is logged."""
    try:
        client.register_plugin(Dashboard(), name=NAME)
    except Exception as e:  # whatever the scheduler raised while unpickling or starting it
        logger.warning("daskbio's dashboard page is not available on this scheduler: %s", e)
        return None
    return page_link(client)


def page_link(client: Any) -> str | None:
    """The address of the ``/daskbio`` page beside ``client``'s dashboard (None without a
    dashboard).

    Examples
    --------
    >>> class Client:
    ...     dashboard_link = "http://127.0.0.1:8787/status"
    >>> page_link(Client())
    'http://127.0.0.1:8787/daskbio'
    """
    link = client.dashboard_link
    if not link:
        return None
    base = link[: -len("/status")] if link.endswith("/status") else link.rstrip("/")
    return f"{base}/daskbio"


def plan(client: Any, planned: dict[str, tuple[int, int]]) -> None:
    """Start the page's counts of a new run: per function, ``(cached, to_run)`` Tasks."""
    client.log_event(TOPIC, {"plan": {name: list(n) for name, n in planned.items()}})


def found(client: Any, keys: dict[str, str]) -> None:
    """Tasks that another run committed meanwhile (by key, their function names)."""
    client.log_event(TOPIC, {"found": keys})


def summary(client: Any) -> Summary:
    """The page's counts, as the scheduler has them now."""
    return Summary.from_json(client.run_on_scheduler(_summary_on))


def _summary_on(dask_scheduler: Any) -> dict[str, Any]:
    return dask_scheduler.plugins[NAME].tally.summary().to_json()
