"""Bulk onboarding: stream a file of assignments, check every row, publish them in batches
of ``custody.assign_devices``, and report.

Memory stays flat however long the file is: rows are read one at a time, one batch is
built at a time, and only a bounded window of batches awaits its answer. Each batch's
``requestId`` derives from the file's content, the options and the batch's position, so
running the same file again after a crash publishes the same commands under the same
keys: finished batches are answered from their stored results and nothing is applied twice.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import constants as c
from models.bulk import AssignDevices
from producers.client import MAX_COMMAND_BYTES, Client, Receipt, build
from producers.rows import BadRow, OnboardingError, Row, detect_format, read_rows

DEFAULT_BATCH_SIZE = c.MAX_BULK_ITEMS
DEFAULT_WINDOW = 32  # batches published and not yet answered, when waiting
MAX_REPORTED_PROBLEMS = 100  # rows listed in a report; the rest are only counted
_ITEM_OVERHEAD_BYTES = 100  # keys, quotes and commas of one item in the command's JSON
_PROGRESS_EVERY_ROWS = 500


@dataclass(frozen=True)
class Batch:
    position: int  # 0-based, in file order
    request_id: str
    items: list[dict[str, Any]]
    lines: list[int]  # the file line of each item


@dataclass
class Problem:
    line: int
    status: str  # "invalid" (refused here, not published), "failed" or "skipped"
    error_code: str
    messages: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "status": self.status,
            "errorCode": self.error_code,
            "errorMessages": self.messages,
        }


@dataclass
class Report:
    """What happened to the file; the counts of items come from the workers' answers."""

    file: str
    rows: int = 0
    invalid: int = 0  # rows refused here, never published
    batches: int = 0  # published
    items: int = 0  # published
    answered_batches: int = 0
    replayed_batches: int = 0  # answered from an earlier run's stored results
    assigned: int = 0
    already_assigned: int = 0
    skipped: int = 0
    failed: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_listed: int = 0
    first_request_id: str | None = None
    last_request_id: str | None = None
    waited: bool = False
    dry_run: bool = False
    complete: bool = True  # False when stopped early by ``max_batches``
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.failed == 0 and self.skipped == 0 and self.complete

    def note(self, problem: Problem) -> None:
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)
        else:
            self.problems_not_listed += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "invalid": self.invalid,
            "batches": self.batches,
            "items": self.items,
            "answeredBatches": self.answered_batches,
            "replayedBatches": self.replayed_batches,
            "assigned": self.assigned,
            "alreadyAssigned": self.already_assigned,
            "skipped": self.skipped,
            "failed": self.failed,
            "problems": [p.to_json() for p in self.problems],
            "problemsNotListed": self.problems_not_listed,
            "firstRequestId": self.first_request_id,
            "lastRequestId": self.last_request_id,
            "waited": self.waited,
            "dryRun": self.dry_run,
            "complete": self.complete,
            "elapsedS": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True)
class FileFacts:
    digest: str  # SHA-256 of the bytes
    lines: int


def inspect_file(path: Path, *, chunk_bytes: int = 1 << 20) -> FileFacts:
    """Hash the file and count its lines, reading it in chunks (for keys and progress)."""
    digest = hashlib.sha256()
    lines = 0
    last = b"\n"
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(chunk_bytes):
                digest.update(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError as exc:
        raise OnboardingError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return FileFacts(digest.hexdigest(), lines + (last != b"\n"))


def batch_key(
    facts: FileFacts, *, file_format: str, batch_size: int, auto_create: bool | None
) -> str:
    """What the batches' requestIds derive from: the content and every option that shapes
    the commands. The same file with the same options yields the same keys."""
    options = f"{facts.digest}|{file_format}|{batch_size}|{auto_create}"
    return hashlib.sha256(options.encode()).hexdigest()[:24]


def _item_bytes(item: dict[str, Any]) -> int:
    """An upper bound of the item's size in the command's JSON, without encoding it."""
    emails = item["customerEmails"]
    text = item["deviceIdentifier"] + "".join(emails) + (item.get("deviceType") or "")
    size = len(text) + 4 * len(emails) + _ITEM_OVERHEAD_BYTES
    return size if text.isascii() else size * 6  # \uXXXX escapes


def make_batches(rows: Iterator[Row], *, key: str, batch_size: int) -> Iterator[Batch]:
    """Group rows into batches of ``batch_size`` items, or fewer where the message size
    limit requires it. Positions and keys follow the file order."""
    position = 0
    items: list[dict[str, Any]] = []
    lines: list[int] = []
    size = 0
    for row in rows:
        row_size = _item_bytes(row.item)
        if items and (len(items) >= batch_size or size + row_size > MAX_COMMAND_BYTES - 1024):
            yield Batch(position, f"onboard-{key}-{position:06d}", items, lines)
            position += 1
            items, lines, size = [], [], 0
        items.append(row.item)
        lines.append(row.line)
        size += row_size
    if items:
        yield Batch(position, f"onboard-{key}-{position:06d}", items, lines)


def onboard(
    path: Path,
    client: Client | None,
    *,
    file_format: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    auto_create: bool | None = None,
    wait: bool = False,
    timeout_s: float = 120.0,
    window: int = DEFAULT_WINDOW,
    max_batches: int | None = None,
    on_start: Callable[[FileFacts], Any] | None = None,
    on_rows: Callable[[int], Any] | None = None,
) -> Report:
    """Onboard ``path``. Without a client (a dry run) rows are checked and counted and
    nothing is published. For progress, ``on_start(facts)`` is called once the file is
    inspected and ``on_rows(n)`` as rows are read."""
    if not 1 <= batch_size <= c.MAX_BULK_ITEMS:
        raise OnboardingError(f"batch size must be 1 to {c.MAX_BULK_ITEMS}, not {batch_size}")
    started = time.monotonic()
    fmt = file_format or detect_format(path)
    facts = inspect_file(path)
    key = batch_key(facts, file_format=fmt, batch_size=batch_size, auto_create=auto_create)
    report = Report(file=str(path), waited=wait and client is not None, dry_run=client is None)
    if on_start is not None:
        on_start(facts)

    def good_rows() -> Iterator[Row]:
        for row in read_rows(path, file_format=fmt, auto_create=auto_create):
            report.rows += 1
            if on_rows is not None and report.rows % _PROGRESS_EVERY_ROWS == 0:
                on_rows(_PROGRESS_EVERY_ROWS)
            if isinstance(row, BadRow):
                report.invalid += 1
                report.note(Problem(row.line, "invalid", "INVALID_REQUEST", row.problems))
            else:
                yield row

    pending: deque[tuple[Receipt, Batch]] = deque()
    batches = make_batches(good_rows(), key=key, batch_size=batch_size)
    for batch in batches:
        if max_batches is not None and report.batches >= max_batches:
            report.complete = False
            break
        report.batches += 1
        report.items += len(batch.items)
        report.first_request_id = report.first_request_id or batch.request_id
        report.last_request_id = batch.request_id
        if client is None:
            continue
        command = build(
            AssignDevices,
            request_id=batch.request_id,
            organization_id=client.organization,
            items=batch.items,
        )
        # Every item was checked when read, and items are plain JSON already: publish them
        # as they are rather than have the model serialize a thousand of them again.
        wire = {"requestId": command.request_id, "organizationId": command.organization_id}
        wire["items"] = batch.items
        receipt = client.publish_raw(command.task_name, wire, reply=report.waited)
        if report.waited:
            pending.append((receipt, batch))
            if len(pending) >= window:
                _settle(client, pending.popleft(), report, timeout_s)
    if on_rows is not None:
        on_rows(report.rows % _PROGRESS_EVERY_ROWS)
    while pending and client is not None:
        _settle(client, pending.popleft(), report, timeout_s)
    report.elapsed_s = time.monotonic() - started
    return report


def _settle(client: Client, sent: tuple[Receipt, Batch], report: Report, timeout_s: float) -> None:
    """Wait for one batch's answer and fold it into the report."""
    receipt, batch = sent
    try:
        (reply,) = client.wait([receipt], timeout_s=timeout_s)
    except TimeoutError as exc:
        raise TimeoutError(
            f"no answer within {timeout_s:g}s for batch {batch.position + 1} "
            f"(requestId {batch.request_id}); is a worker running? Run the same command "
            "again to resume: finished batches are answered from their stored results."
        ) from exc
    report.answered_batches += 1
    report.replayed_batches += reply.replayed
    result = reply.result
    if not result.get("success"):  # the whole command was refused: every item failed
        report.failed += len(batch.items)
        for line in batch.lines:
            report.note(
                Problem(
                    line, "failed", str(result.get("errorCode")), result.get("errorMessages") or []
                )
            )
        return
    summary = result["summary"]
    report.assigned += summary["assigned"]
    report.already_assigned += summary["alreadyAssigned"]
    report.skipped += summary["skipped"]
    report.failed += summary["failed"]
    for line, item in zip(batch.lines, result["items"], strict=True):
        if item["status"] in ("failed", "skipped"):
            report.note(Problem(line, item["status"], item["errorCode"], item["errorMessages"]))
