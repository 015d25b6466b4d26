"""Rows of an onboarding file, read one at a time and checked like the worker checks items.

CSV: a header naming ``deviceIdentifier`` and ``customerEmails`` (addresses separated by
``;``), optionally ``deviceType`` and ``autoCreateDevice``. JSON Lines: one assignment item
per line, with the wire names. Blank lines are ignored. Each row becomes a wire item or a
``BadRow`` with its line number and the reasons.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.bulk import parse_item
from models.domain import select_emails

FORMATS = ("csv", "jsonl")
CSV_REQUIRED = ("deviceIdentifier", "customerEmails")
CSV_OPTIONAL = ("deviceType", "autoCreateDevice")
EMAIL_SEPARATOR = ";"
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0", ""}


class OnboardingError(Exception):
    """Raised when the file as a whole cannot be onboarded (unreadable, bad header, not
    UTF-8, unknown format, bad options)."""


@dataclass(frozen=True)
class Row:
    line: int
    item: dict[str, Any]  # wire names, ready to publish


@dataclass(frozen=True)
class BadRow:
    line: int
    problems: list[str]


def detect_format(path: Path) -> str:
    """``csv`` or ``jsonl``, from the suffix, else from the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    try:
        with path.open("rb") as stream:
            start = stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise OnboardingError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return "jsonl" if start.startswith(b"{") else "csv"


def read_rows(
    path: Path, *, file_format: str, auto_create: bool | None = None
) -> Iterator[Row | BadRow]:
    """Every row of the file, in order. ``auto_create`` applies to rows that do not say:
    ``None`` means "create the device when the row names a deviceType"."""
    if file_format not in FORMATS:
        raise OnboardingError(f"unknown format {file_format!r}; one of {', '.join(FORMATS)}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            if file_format == "csv":
                yield from _csv_rows(stream, auto_create)
            else:
                yield from _jsonl_rows(stream, auto_create)
    except UnicodeDecodeError as exc:
        raise OnboardingError(
            f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from exc
    except OSError as exc:
        raise OnboardingError(f"cannot read {path}: {exc.strerror or exc}") from exc


def checked(line: int, item: Any) -> Row | BadRow:
    """The same checks the worker makes, so that a row refused here would be refused there."""
    parsed = parse_item(item)
    if isinstance(parsed, list):
        return BadRow(line, parsed)
    if not select_emails(parsed.customer_emails).valid:
        given = ", ".join(repr(e) for e in parsed.customer_emails)
        return BadRow(line, [f"customerEmails: no valid e-mail address in {given}"])
    return Row(line, item)


def _csv_rows(stream: Any, auto_create: bool | None) -> Iterator[Row | BadRow]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    columns = [name.strip() for name in header]
    unknown = [n for n in columns if n not in CSV_REQUIRED + CSV_OPTIONAL]
    missing = [n for n in CSV_REQUIRED if n not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        raise OnboardingError(
            f"line 1: the CSV header must name {', '.join(CSV_REQUIRED)} and may name "
            f"{', '.join(CSV_OPTIONAL)}, each once; got {','.join(columns)!r}"
        )
    width = len(columns)
    index = {name: columns.index(name) for name in columns}
    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num  # a quoted field may span lines
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != width:
            yield BadRow(start, [f"expected {width} fields, got {len(record)}"])
            continue
        item: dict[str, Any] = {
            "deviceIdentifier": record[index["deviceIdentifier"]],
            "customerEmails": [
                e for e in record[index["customerEmails"]].split(EMAIL_SEPARATOR) if e.strip()
            ],
        }
        device_type = record[index["deviceType"]].strip() if "deviceType" in index else ""
        if device_type:
            item["deviceType"] = device_type
        create: bool | None = auto_create
        if "autoCreateDevice" in index:
            flag = record[index["autoCreateDevice"]].strip().lower()
            if flag not in _TRUE | _FALSE:
                yield BadRow(start, [f"autoCreateDevice: expected true or false, got {flag!r}"])
                continue
            create = flag in _TRUE if flag else create
        if create is None:
            create = bool(device_type)
        if create:
            item["autoCreateDevice"] = True
        yield checked(start, item)


def _jsonl_rows(stream: Any, auto_create: bool | None) -> Iterator[Row | BadRow]:
    for line, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            item = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            yield BadRow(line, [f"not JSON: {exc}"])
            continue
        if isinstance(item, dict) and "autoCreateDevice" not in item:
            create = bool(item.get("deviceType")) if auto_create is None else auto_create
            if create:
                item["autoCreateDevice"] = True
        yield checked(line, item)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
