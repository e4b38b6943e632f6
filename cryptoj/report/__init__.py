"""HTML reports of a replay or a live session, from its journal and its market data.

``python -m cryptoj replay --report DIR`` and ``python -m cryptoj report JOURNAL --out DIR``
write ``DIR/index.html`` (inline CSS, no external resources) and its PNG charts beside it:
equity against the equal-weight buy-and-hold benchmark, drawdown, exposure per asset over
time, risk levels over time, trades on each product's price chart, and the summary table
(with the data-age audit: every decision made on a quote older than
``portfolio.quote_max_age_s``).
See :mod:`cryptoj.report.data` for how each figure is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptoj.config import PortfolioConfig
from cryptoj.report.data import ReportData, ReportError, load_report_data


def write_report(
    journal: str | Path,
    out: str | Path,
    *,
    data: str | None = None,
    products: Sequence[str] | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    catalog: str = "data",
    progress: Callable[[int, int, str], None] | None = None,
    quote_max_age_s: float = PortfolioConfig().quote_max_age_s,
) -> Path:
    """Write the report of ``journal`` into ``out``; return the path of ``index.html``.

    ``data`` is the market data set name or CSV path (default: the journal's ``meta.data``);
    ``extra`` adds rows to the summary table (the replay adds its own summary); ``catalog`` is
    the local catalog for ``catalog:`` / ``recorded:`` data; ``progress(done, total, what)`` is
    called after each step (loading, each chart, the page); ``quote_max_age_s`` is the config's
    ``portfolio.quote_max_age_s``: the page names every decision made on older quotes.
    """
    from cryptoj.report.charts import CHARTS, render_charts
    from cryptoj.report.html import write_html

    total = len(CHARTS) + 2

    def step(done: int, what: str) -> None:
        if progress is not None:
            progress(done, total, what)

    step(0, "loading the journal and prices")
    d = load_report_data(
        journal,
        data,
        products=products,
        extra=extra,
        catalog=catalog,
        quote_max_age_s=quote_max_age_s,
    )
    step(1, "charts")
    out_dir = Path(out)
    charts = render_charts(d, out_dir, on_chart=lambda i, name: step(1 + i, name))
    index = write_html(d, charts, out_dir, title or f"cryptoj report: {Path(journal).name}")
    step(total, "written")
    return index


__all__ = ["ReportData", "ReportError", "load_report_data", "write_report"]
