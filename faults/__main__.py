"""``python -m faults [--short]``: run the fault-injection suite and print its table.

Exit code 0 when nothing was lost, nothing took effect twice and every invariant held."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from faults.forms import LONG, SHORT
from faults.report import render
from faults.run import run
from faults.servers import ServerUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI form: 300 commands, ~1 min")
    parser.add_argument("--commands", type=int, help="override the number of commands")
    parser.add_argument("--seed", type=int, help="override the random seed of the command mix")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data folders")
    args = parser.parse_args(argv)
    form = SHORT if args.short else LONG
    if args.commands is not None:
        if args.commands < 1:
            parser.error("--commands must be at least 1")
        form = dataclasses.replace(form, commands=args.commands)
    if args.seed is not None:
        form = dataclasses.replace(form, seed=args.seed)
    try:
        result = run(form, keep=args.keep)
    except ServerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
