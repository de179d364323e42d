"""The HTML of a :class:`~daskbio.monitor.tally.Summary`: the table that a notebook shows
and that the dashboard's ``/daskbio`` page serves (and refreshes from ``/daskbio/json``).

Plain HTML with inline styles, which both a notebook and a browser render as they are.
"""

from __future__ import annotations

from html import escape

from daskbio.monitor.tally import TOTAL, Summary

# The bar's segments, in order, with their colours.
_SEGMENTS = (
    ("cached", "#9aa5b1"),
    ("loaded", "#5b9bd5"),
    ("computed", "#3c9a5f"),
    ("failed", "#d64545"),
    ("running", "#f0b429"),
)
_NUMBERS = ("cached", "loaded", "running", "computed", "failed", "remaining", "chunks")
_CELL = "padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums"


def _bar(row: dict, width: int = 160) -> str:
    total = row["total"] or 1
    parts = "".join(
        f'<div title="{name} {row[name]}" style="width:{width * row[name] / total:.1f}px;'
        f'background:{colour}"></div>'
        for name, colour in _SEGMENTS
        if row[name]
    )
    return (
        f'<div style="display:flex;width:{width}px;height:12px;background:#e4e7eb;'
        f'border-radius:3px;overflow:hidden">{parts}</div>'
    )


def seconds(elapsed: float) -> str:
    """``elapsed`` as people read it.

    Examples
    --------
    >>> seconds(4.25), seconds(125), seconds(7300)
    ('4.2 s', '2 min 5 s', '2 h 1 min')
    """
    if elapsed < 60:
        return f"{elapsed:.1f} s"
    minutes, secs = divmod(int(elapsed), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def rate(per_second: float | None) -> str:
    """Tasks per second, or per minute when fewer than one a second.

    Examples
    --------
    >>> rate(12.345), rate(0.05), rate(None)
    ('12.3/s', '3.0/min', '')
    """
    if per_second is None:
        return ""
    return f"{per_second:.1f}/s" if per_second >= 1 else f"{per_second * 60:.1f}/min"


def table(summary: Summary) -> str:
    """The summary as an HTML table: one row per function, then the total."""
    head = "".join(
        f'<th style="{_CELL}">{h}</th>'
        for h in ("function", "", "done/total", *_NUMBERS, "elapsed", "rate")
    )
    body = []
    for row in summary.rows():
        total = row["function"] == TOTAL
        weight = "font-weight:bold;border-top:1px solid #9aa5b1;" if total else ""
        cells = [
            f'<td style="{weight}padding:2px 8px">{escape(row["function"])}</td>',
            f'<td style="{weight}padding:2px 8px">{_bar(row)}</td>',
            f'<td style="{weight}{_CELL}">{row["done"]}/{row["total"]}</td>',
            *(f'<td style="{weight}{_CELL}">{row[n] or ""}</td>' for n in _NUMBERS),
            f'<td style="{weight}{_CELL}">{seconds(row["elapsed"])}</td>',
            f'<td style="{weight}{_CELL}">{rate(row["rate"])}</td>',
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<table class="daskbio-progress" style="border-collapse:collapse;font-family:sans-serif;'
        f'font-size:13px"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def page(summary: Summary) -> str:
    """The dashboard's ``/daskbio`` page: the table now, then refreshed every second from
    the page's JSON (``/daskbio/json``, whose ``html`` is this table)."""
    return _PAGE.replace("{table}", table(summary)).replace("{elapsed}", seconds(summary.elapsed))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>daskbio</title>
<style>
  body { font-family: sans-serif; margin: 24px; color: #1f2933; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  p { color: #52606d; margin: 0 0 16px; font-size: 13px; }
  a { color: #2680c2; }
  th { border-bottom: 1px solid #9aa5b1; font-weight: 600; }
  tr:hover td { background: #f5f7fa; }
</style>
</head>
<body>
<h1>daskbio: Tasks by function</h1>
<p>Run time <span id="elapsed">{elapsed}</span> &middot; cached: found in the cache by the plan;
loaded: committed by another run meanwhile &middot; <a id="dask" href="status">Dask dashboard</a>
&middot; <a id="json" href="daskbio/json">JSON</a></p>
<div id="table">{table}</div>
<script>
// Links from where the page is, with or without a trailing slash (behind a proxy too).
const here = location.pathname.replace(/\\/$/, "");
const json = here + "/json";
document.getElementById("json").href = json;
document.getElementById("dask").href = here.replace(/daskbio$/, "status");
async function refresh() {
  try {
    const response = await fetch(json, {cache: "no-store"});
    const data = await response.json();
    document.getElementById("table").innerHTML = data.html;
    document.getElementById("elapsed").textContent = data.elapsed_text;
  } catch (e) {
    document.getElementById("elapsed").textContent += " (the scheduler does not answer)";
    return;
  }
  setTimeout(refresh, 1000);
}
setTimeout(refresh, 1000);
</script>
</body>
</html>
"""
