"""The terminal views: header, waterfall drawn to scale, per-route table, log lines, checks.

Rendered with rich; on a terminal with colour, and as plain text when the output is a pipe or
a CI log (rich drops the styling, the layout stays).
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ._collect import (
    AttemptView,
    RetryView,
    RouteStats,
    WaterfallView,
    percentile,
    short_reason,
)
from ._report import Check, DemoReport, fault_of
from ._waits import WaitStats, WaitView
from ._workload import AUTH_HEADER

__all__ = ["render_checks", "render_report", "render_wait", "render_waterfall"]

_LABEL_WIDTH = 30
_BAR = "█"
_GAP = "·"
_TIMES = "\u00d7"  # the multiplication sign
#: Consoles at least this wide get the summary as one table.
_WIDE = 120
_DETAILS = ("p50 / p95", "retry reasons, errors")


def _fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def _outcome(status: int | None, error_type: str | None) -> str:
    if status is not None:
        return str(status)
    return short_reason(error_type) if error_type else "?"


def start_header(
    *,
    requested: int | None,
    duration: float | None,
    concurrency: int,
    seed: int,
    target: str,
    other_origin: str | None,
    otlp: str | None,
    prometheus_url: str | None,
) -> str:
    """What the run is about to do and where to look, printed before the workload starts."""
    if requested is not None:
        amount = f"{requested} requests"
    elif duration is not None:
        amount = f"{duration:g} s of requests"
    else:
        amount = "requests until interrupted"
    lines = [f"observable-session demo: {amount}, concurrency {concurrency}, seed {seed}"]
    if other_origin is not None:
        lines.append(f"Upstream: {target} (embedded, misbehaving on purpose)")
        lines.append(f"Other origin: {other_origin} (where /artifacts redirects)")
    else:
        lines.append(f"Upstream: {target} (--target)")
    if otlp:
        lines.append(f"Exporting traces, metrics and logs over OTLP to {otlp}")
    if prometheus_url is not None:
        lines.append(f"Prometheus metrics: {prometheus_url}")
    return "\n".join(lines)


def _header(report: DemoReport) -> Text:
    """The closing summary line; the start header was printed before the run."""
    text = Text()
    elapsed = report.workload.elapsed_s
    text.append(f"Ran {report.workload.total_issued} requests in {elapsed:.1f} s")
    if report.interrupted:
        text.append(" (interrupted)")
    text.append(".")
    return text


def _gap_label(after: AttemptView, retry: RetryView | None) -> str:
    if retry is None:
        return "    redirect" if after.status_code and 300 <= after.status_code < 400 else "    gap"
    why = short_reason(retry.reason)
    if retry.retry_after:
        return f"    Retry-After {_fmt_ms(retry.backoff_s)} ({why})"
    return f"    backoff {_fmt_ms(retry.backoff_s)} ({why})"


def _bar_line(
    label: str, start: int, end: int, width: int, char: str, style: str, suffix: str
) -> Text:
    end = min(max(end, start + 1), width)
    start = min(start, width - 1)
    # Never wrapped: a wrapped row would break the time axis; a long suffix is cut instead.
    line = Text(label[: _LABEL_WIDTH - 1].ljust(_LABEL_WIDTH), no_wrap=True, overflow="ellipsis")
    line.append(" " * start)
    line.append(char * (end - start), style=style)
    line.append(" " * (width - end))
    line.append(f"  {suffix}")
    return line


def render_waterfall(view: WaterfallView, width: int) -> RenderableType:
    """One logical request, its attempts and the waits between them, on one time axis."""
    bar_width = max(30, min(72, width - _LABEL_WIDTH - 22))
    total = view.duration_s or 1e-9

    def col(t: float) -> int:
        return max(0, min(bar_width, round(t / total * bar_width)))

    n = len(view.attempts)
    ending = _outcome(view.status_code, view.error_type)
    title = Text(
        f"Waterfall of one retried request: {view.name} -> {ending} after {n} attempts "
        f"in {_fmt_ms(view.duration_s)}",
        style="bold",
    )
    title.append(f"\ntrace {view.trace_id}, drawn to scale from the span timestamps", style="dim")
    axis = Text(" " * _LABEL_WIDTH + "0 ms")
    end_label = _fmt_ms(view.duration_s)
    axis.append(" " * max(1, bar_width - 4 - len(end_label)) + end_label)
    rows: list[RenderableType] = [title, axis]
    logical_style = "red" if view.error_type else "blue"
    rows.append(
        _bar_line(
            view.name,
            0,
            bar_width,
            bar_width,
            _BAR,
            logical_style,
            f"{_fmt_ms(view.duration_s)}  {ending}",
        )
    )
    retries = {r.resend_count: r for r in view.retries}
    first_server = view.attempts[0].server if view.attempts else ""
    for index, attempt in enumerate(view.attempts):
        where = "" if attempt.server == first_server else f" -> {attempt.server}"
        outcome = _outcome(attempt.status_code, attempt.error_type)
        rows.append(
            _bar_line(
                f"  attempt {index + 1}",
                col(attempt.start_s),
                col(attempt.end_s),
                bar_width,
                _BAR,
                "red" if attempt.is_error else "green",
                f"{_fmt_ms(attempt.duration_s)}  {outcome}{where}",
            )
        )
        if index + 1 < n:
            following = view.attempts[index + 1]
            rows.append(
                _bar_line(
                    _gap_label(attempt, retries.get(index + 1)),
                    col(attempt.end_s),
                    col(following.start_s),
                    bar_width,
                    _GAP,
                    "yellow",
                    f"{_fmt_ms(following.start_s - attempt.end_s)} waited",
                )
            )
    scale = Text(
        f"1 column = {_fmt_ms(total / bar_width)}; {_BAR} a span (red: failed), "
        f"{_GAP} waiting for the next attempt",
        style="dim",
        no_wrap=True,
        overflow="ellipsis",
    )
    rows.append(scale)
    return Group(*rows)


def render_wait(view: WaitView, width: int) -> RenderableType:
    """One wait: its polls, each poll's attempts, and the pauses between polls, to scale."""
    bar_width = max(30, min(72, width - _LABEL_WIDTH - 22))
    total = view.duration_s or 1e-9

    def col(t: float) -> int:
        return max(0, min(bar_width, round(t / total * bar_width)))

    title = Text(
        f"Waterfall of one wait: {view.name} -> {view.outcome} after {len(view.polls)} polls "
        f"in {_fmt_ms(view.duration_s)}",
        style="bold",
    )
    title.append(f"\ntrace {view.trace_id}, drawn to scale from the span timestamps", style="dim")
    end_label = _fmt_ms(view.duration_s)
    axis = Text(" " * _LABEL_WIDTH + "0 ms")
    axis.append(" " * max(1, bar_width - 4 - len(end_label)) + end_label)
    style = "blue" if view.outcome == "done" else "red"
    rows: list[RenderableType] = [
        title,
        axis,
        _bar_line(view.name, 0, bar_width, bar_width, _BAR, style, f"{end_label}  {view.outcome}"),
    ]
    if view.first_pause is not None and view.polls:
        interval, told = view.first_pause
        rows.append(
            _bar_line(
                f"  pause {_fmt_ms(interval)} ({'Retry-After' if told else 'interval'})",
                0,
                col(view.polls[0].start_s),
                bar_width,
                _GAP,
                "yellow",
                f"{_fmt_ms(view.polls[0].start_s)} waited",
            )
        )
    for number, poll in enumerate(view.polls, start=1):
        outcome = _outcome(poll.status_code, poll.error_type)
        rows.append(
            _bar_line(
                f"  poll {number}",
                col(poll.start_s),
                col(poll.end_s),
                bar_width,
                _BAR,
                "red" if poll.error_type else "green",
                f"{_fmt_ms(poll.end_s - poll.start_s)}  {outcome}",
            )
        )
        if len(poll.attempts) > 1:  # a poll that was retried: show its attempts
            for index, (start, end, status, error, failed) in enumerate(poll.attempts, start=1):
                rows.append(
                    _bar_line(
                        f"    attempt {index}",
                        col(start),
                        col(end),
                        bar_width,
                        _BAR,
                        "red" if failed else "green",
                        f"{_fmt_ms(end - start)}  {_outcome(status, error)}",
                    )
                )
        if number < len(view.polls):
            following = view.polls[number]
            source = "Retry-After" if poll.pause_from_retry_after else "interval"
            rows.append(
                _bar_line(
                    f"    pause {_fmt_ms(poll.pause_s)} ({source})",
                    col(poll.end_s),
                    col(following.start_s),
                    bar_width,
                    _GAP,
                    "yellow",
                    f"{_fmt_ms(following.start_s - poll.end_s)} waited",
                )
            )
    rows.append(
        Text(
            f"1 column = {_fmt_ms(total / bar_width)}; {_BAR} a span (red: failed), "
            f"{_GAP} pausing before the next poll",
            style="dim",
            no_wrap=True,
            overflow="ellipsis",
        )
    )
    return Group(*rows)


def _waits_line(stats: WaitStats) -> Text:
    outcomes = ", ".join(f"{o} {n}" for o, n in sorted(stats.outcomes.items()))
    p50 = percentile(stats.durations, 0.50)
    p95 = percentile(stats.durations, 0.95)
    return Text(
        f"Waited for {stats.waits} jobs with Session.wait ({outcomes}): {stats.polls} polls, "
        f"p50 / p95 {_fmt_ms(p50)} / {_fmt_ms(p95)} per wait."
    )


def _why(stats: RouteStats) -> str:
    lines = [f"retried {r}{_TIMES}{c}" for r, c in sorted(stats.retries_by_reason.items())]
    lines += [f"failed {t}{_TIMES}{c}" for t, c in sorted(stats.errors_by_type.items())]
    return "\n".join(lines) or "-"


def _p50_p95(stats: RouteStats) -> str:
    p50 = percentile(stats.durations, 0.50)
    p95 = percentile(stats.durations, 0.95)
    if p50 is None or p95 is None:
        return "-"
    return f"{_fmt_ms(p50).removesuffix(' ms')} / {_fmt_ms(p95)}"


_COUNTS = ("requests", "attempts", "retries", "redirects", "errors")


def _cells(stats: RouteStats, columns: tuple[str, ...]) -> list[str]:
    values = {
        "requests": str(stats.requests),
        "attempts": str(stats.attempts),
        "retries": str(stats.retries),
        "redirects": str(stats.redirects),
        "errors": str(stats.errors),
        "p50 / p95": _p50_p95(stats),
        "retry reasons, errors": _why(stats),
    }
    return [values[name] for name in columns]


def _summary_tables(report: DemoReport, width: int) -> list[Table]:
    """One table on a wide console; on a narrow one, counts and latencies apart."""
    layouts: list[tuple[str, tuple[str, ...], bool]]
    if width >= _WIDE:
        layouts = [("Per route, counted from the spans", (*_COUNTS, *_DETAILS), True)]
    else:
        layouts = [
            ("Per route, counted from the spans", _COUNTS, True),
            ("Per route, latency and reasons", _DETAILS, False),
        ]
    tables = []
    for title, columns, with_fault in layouts:
        table = Table(
            title=title,
            title_justify="left",
            title_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
        )
        table.add_column("route", no_wrap=True)
        for name in columns:
            wraps = name == _DETAILS[-1]
            table.add_column(name, justify="left" if wraps else "right", no_wrap=not wraps)
        for stats in report.routes:
            route = Text(stats.route)
            if with_fault and report.embedded:
                route.append(f"\n  {fault_of(stats.route)}", style="dim")
            table.add_row(route, *_cells(stats, columns))
        table.add_section()
        table.add_row(Text("all routes"), *_cells(report.totals(), columns), style="bold")
        tables.append(table)
    return tables


def render_checks(checks: list[Check]) -> RenderableType:
    """One line per invariant, ticked or crossed."""
    lines = []
    for check in checks:
        line = Text("  ")
        line.append("✓ " if check.ok else "✗ ", style="green" if check.ok else "bold red")
        line.append(check.text)
        lines.append(line)
    return Group(*lines)


def render_report(console: Console, report: DemoReport) -> None:
    """Everything but the checks: header, waterfall, table, log lines."""
    console.print(_header(report))
    console.print()
    if report.waterfall is not None:
        console.print(render_waterfall(report.waterfall, console.width))
    else:
        console.print("No request was retried, so there is no waterfall to draw.")
    console.print()
    if report.wait_view is not None:
        console.print(render_wait(report.wait_view, console.width))
        console.print()
    if report.waits.waits:
        console.print(_waits_line(report.waits))
        console.print()
    for table in _summary_tables(report, console.width):
        console.print(table)
        console.print()
    shown = len(report.log_samples)
    console.print(
        Text(
            f"{shown} of the {report.log_lines} JSON log lines written "
            f"(the {AUTH_HEADER} value appears only as REDACTED)",
            style="bold",
        )
    )
    for line in report.log_samples:
        console.print(Text(line), soft_wrap=True, highlight=False, markup=False)
