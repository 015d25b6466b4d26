"""Bounds on the shape of a raw command, checked before anything else reads it, and text that
every store accepts.

The schema bounds each field it knows (string lengths, number of e-mails, bulk items); this
module bounds what it cannot see: how deep, how many values, how wide, how long the keys,
and text that PostgreSQL would refuse (NUL characters, lone surrogates).
"""

from __future__ import annotations

import json
import math
from typing import Any

from models import constants as c


def is_clean_text(text: str) -> bool:
    """Valid Unicode without NUL: what every text column and JSON column accepts."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a "\ud800" escape
        return False
    return True


def clean_text(text: str) -> str:
    """``text`` made storable: NUL and lone surrogates written out as escapes."""
    if is_clean_text(text):
        return text
    escaped = text.replace("\x00", "\\u0000")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def storable_json(value: Any, *, max_chars: int) -> str | None:
    """``value`` as JSON text that every store accepts, cut to ``max_chars``; None when it
    cannot be written as JSON at all (nested beyond the interpreter's reach)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
        if not is_clean_text(text):
            text = json.dumps(value, ensure_ascii=True)
    except (ValueError, TypeError, RecursionError):
        return None
    return text[:max_chars]


def shape_problems(command: Any) -> list[str]:
    """Why the decoded JSON value ``command`` is too big or too odd to be read further,
    naming the limit; empty when it is within every bound.

    Walks the value without recursion, so no input can exhaust the stack. Most commands are
    within bounds: a first walk only says whether; a second one, for the others, says where.
    """
    return [] if _within_bounds(command) else _problems(command)


def _within_bounds(command: Any) -> bool:
    pending: list[tuple[Any, int]] = [(command, 1)]
    values = 0
    while pending:
        value, depth = pending.pop()
        values += 1
        if values > c.MAX_JSON_VALUES:
            return False
        if isinstance(value, str):
            if not is_clean_text(value):
                return False
        elif isinstance(value, dict):
            if depth > c.MAX_JSON_DEPTH or len(value) > c.MAX_JSON_OBJECT_KEYS:
                return False
            for key, item in value.items():
                if not isinstance(key, str) or len(key) > c.MAX_JSON_KEY_CHARS:
                    return False
                if not is_clean_text(key):
                    return False
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > c.MAX_JSON_DEPTH or len(value) > c.MAX_JSON_ARRAY_ITEMS:
                return False
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            return False
    return True


def _problems(command: Any) -> list[str]:
    pending: list[tuple[Any, int, str]] = [(command, 1, "command")]
    values = 0
    while pending:
        value, depth, where = pending.pop()
        values += 1
        if values > c.MAX_JSON_VALUES:
            return [f"command: more than {c.MAX_JSON_VALUES} values (limit on values per command)"]
        if isinstance(value, dict | list) and depth > c.MAX_JSON_DEPTH:
            return [f"{where}: nested deeper than {c.MAX_JSON_DEPTH} levels (limit on nesting)"]
        if isinstance(value, dict):
            if len(value) > c.MAX_JSON_OBJECT_KEYS:
                return [
                    f"{where}: {len(value)} keys, at most {c.MAX_JSON_OBJECT_KEYS} "
                    "(limit on keys per object)"
                ]
            for key, item in value.items():
                problem = _key_problem(key, where)
                if problem:
                    return [problem]
                pending.append((item, depth + 1, key if where == "command" else f"{where}.{key}"))
        elif isinstance(value, list):
            if len(value) > c.MAX_JSON_ARRAY_ITEMS:
                return [
                    f"{where}: {len(value)} items, at most {c.MAX_JSON_ARRAY_ITEMS} "
                    "(limit on items per array)"
                ]
            pending.extend((item, depth + 1, f"{where}.{n}") for n, item in enumerate(value))
        elif isinstance(value, str):
            if not is_clean_text(value):
                return [f"{where}: text with a NUL character or a lone surrogate is not accepted"]
        elif isinstance(value, float) and not math.isfinite(value):
            return [f"{where}: {value} is not a JSON number"]
    return []


def _key_problem(key: Any, where: str) -> str | None:
    if not isinstance(key, str):
        return f"{where}: keys must be strings"
    if len(key) > c.MAX_JSON_KEY_CHARS:
        return (
            f"{where}: a key of {len(key)} characters, at most {c.MAX_JSON_KEY_CHARS} "
            "(limit on key length)"
        )
    if not is_clean_text(key):
        return f"{where}: a key with a NUL character or a lone surrogate is not accepted"
    return None
