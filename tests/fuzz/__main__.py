"""``python -m tests.fuzz``: fuzz for longer than the test suite does.

python -m tests.fuzz                 # the hypothesis properties, 20,000 inputs each
python -m tests.fuzz --examples N    # … N inputs each
python -m tests.fuzz --atheris [-max_total_time=600 …]   # coverage-guided (pip install '.[fuzz]')
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--atheris"]:
        return _atheris(argv[1:])
    examples = "20000"
    if argv[:1] == ["--examples"] and len(argv) > 1:
        examples = argv[1]
    elif argv and argv != ["--long"]:
        print(__doc__, file=sys.stderr)
        return 2
    import pytest

    os.environ["CUSTODY_FUZZ_EXAMPLES"] = examples
    print(f"fuzzing with {examples} inputs per property", flush=True)
    return pytest.main(["-q", "-m", "fuzz", "-p", "no:cacheprovider", str(REPO / "tests" / "fuzz")])


def _atheris(args: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    with atheris.instrument_imports():
        import worker.consumer  # noqa: F401
    from tests.fuzz.harness import SEEDS, one_input

    logging.disable(logging.CRITICAL)  # dead letters are logged; millions of them here
    for seed in SEEDS:
        one_input(seed)
    atheris.Setup([sys.argv[0], *args], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
