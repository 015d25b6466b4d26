"""The table of a fault run, in Markdown: the summary, then one row per fault."""

from __future__ import annotations

from datetime import UTC, datetime

from faults.invariants import DEAD, OK, REJECTED, Verdict
from faults.run import Result


def render(result: Result) -> str:
    """The run as Markdown: the summary table, then one row per fault."""
    v = result.verdict
    s = result.settings
    dupes = sum(v.duplicate_effects.values())
    recovery = result.recovery_s
    lines = [
        f"Fault run `{result.form.name}`: {v.sent} commands at {result.form.rate_per_s:g}/s, "
        f"{result.form.workers} workers x {result.form.concurrency} processes, "
        f"private Redis (append-only) and PostgreSQL; time limit {s.task_time_limit_s:g}s, "
        f"retries {s.max_retries} x {s.retry_backoff_base_s:g}-{s.retry_backoff_max_s:g}s, "
        f"visibility timeout {s.visibility_timeout_s:g}s; "
        f"{datetime.now(UTC):%Y-%m-%d}, {result.duration_s:.0f}s in all.",
        "",
        "| sent | applied | rejected | dead-lettered | lost | duplicate effects "
        "| redeliveries | recovery time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {v.sent} | {v.classes[OK]} | {v.classes[REJECTED]} | {v.classes[DEAD]} "
        f"| {len(v.lost)} | {dupes} | {result.redeliveries} "
        f"| {_seconds(recovery)} |",
        "",
        f"Sent: {_kinds(v)}; {v.copies - v.sent} exact duplicates published on top. "
        f"Transient retries {result.retries}, answers replayed from the idempotency record "
        f"{result.replayed}, publishes retried by the producer {result.publish_retries}; "
        f"messages the broker lost in flight, sent again by the producer {len(result.resent)}. "
        f"Unexpected outcomes {len(v.unexpected)}; invariant violations "
        f"{sum(v.violations.values())}; workers alive at the end "
        f"{result.workers_alive}/{result.form.workers}, workers that exited on their own "
        f"(restarted by the supervisor) {result.worker_exits}; every message accounted for "
        f"{_seconds(result.quiet_after_s)} after the last fault ended.",
        "",
        "| fault | at | down for | commands flow again after | messages the killed workers "
        "held | handed out again after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for st in result.struck:
        lines.append(
            f"| {st.fault.describe()} | {st.fault.at_s:g}s | {st.ended - st.started:.1f}s "
            f"| {_seconds(st.service_back_s)} | {len(st.in_flight) if st.in_flight else '-'} "
            f"| {_seconds(st.in_flight_back_s)} |"
        )
    problems = [
        *(
            f"{st.fault.describe()} at {st.fault.at_s:g}s: {st.error}"
            for st in result.struck
            if st.error
        ),
        *(f"lost: {x}" for x in v.lost[:10]),
        *(f"unexpected: {x}" for x in v.unexpected[:10]),
        *(f"{k}: {n}" for k, n in v.duplicate_effects.items() if n),
        *(f"{k}: {n}" for k, n in v.violations.items() if n),
    ]
    if problems:
        lines += ["", "Problems:", *(f"- {p}" for p in problems)]
    if result.resent:
        lines += ["", "Sent again by the producer:", *(f"- {r}" for r in result.resent[:20])]
    if result.exit_reasons:
        lines += ["", "Why workers exited:", *(f"- {r}" for r in result.exit_reasons)]
    if result.folder:
        lines += ["", f"Logs kept in {result.folder}"]
    return "\n".join(lines)


def _kinds(v: Verdict) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(v.kinds.items()))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
