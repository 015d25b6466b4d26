"""Onboarding files are read row by row, checked like the worker checks items, batched and
keyed deterministically; bad rows are reported with their line numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from producers.client import MAX_COMMAND_BYTES
from producers.onboarding import inspect_file, make_batches
from producers.rows import BadRow, OnboardingError, Row, detect_format, read_rows

HEADER = "deviceIdentifier,customerEmails,deviceType\n"
REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows_of(path: Path, **options) -> list[Row | BadRow]:
    return list(read_rows(path, file_format=detect_format(path), **options))


def test_csv_rows_become_items_and_bad_rows_are_reported_with_their_line_numbers(tmp_path):
    # Given a CSV file with good rows, bad rows, a blank line and a quoted multi-line field
    path = write(
        tmp_path,
        "fleet.csv",
        HEADER
        + "SN-1, a@example.com ;B@example.com,Lock\n"  # line 2
        + "SN-2,not-an-email,Lock\n"  # line 3: no valid address
        + "\n"  # line 4: blank, ignored
        + "SN-3,c@example.com,\n"  # line 5: no type, so no auto-create
        + ",d@example.com,Lock\n"  # line 6: no identifier
        + "SN-7,e@example.com,Lock,surplus\n"  # line 7: too many fields
        + '"SN-8","f@example.com;\ng@example.com",Lock\n'  # lines 8-9
        + f"{'x' * 129},h@example.com,Lock\n",  # line 10: identifier too long
    )
    # When it is read
    rows = rows_of(path)
    # Then good rows are wire items and bad rows name their line and the reason
    assert [(type(r).__name__, r.line) for r in rows] == [
        ("Row", 2),
        ("BadRow", 3),
        ("Row", 5),
        ("BadRow", 6),
        ("BadRow", 7),
        ("Row", 8),
        ("BadRow", 10),
    ]
    assert rows[0].item == {
        "deviceIdentifier": "SN-1",
        "customerEmails": [" a@example.com ", "B@example.com"],
        "deviceType": "Lock",
        "autoCreateDevice": True,
    }
    assert rows[1].problems == ["customerEmails: no valid e-mail address in 'not-an-email'"]
    assert rows[2].item == {"deviceIdentifier": "SN-3", "customerEmails": ["c@example.com"]}
    assert rows[3].problems == ["deviceIdentifier: String should have at least 1 character"]
    assert rows[4].problems == ["expected 3 fields, got 4"]
    assert rows[5].item["customerEmails"] == ["f@example.com", "\ng@example.com"]
    assert rows[6].problems == ["deviceIdentifier: String should have at most 128 characters"]


def test_the_auto_create_option_applies_to_rows_that_do_not_say(tmp_path):
    path = write(
        tmp_path,
        "f.csv",
        "deviceIdentifier,customerEmails,deviceType,autoCreateDevice\n"
        "SN-1,a@example.com,Lock,\n"
        "SN-2,a@example.com,Lock,false\n"
        "SN-3,a@example.com,,\n"
        "SN-4,a@example.com,Lock,maybe\n",
    )
    never = rows_of(path, auto_create=False)
    assert [r.item.get("autoCreateDevice") for r in never[:3]] == [None, None, None]
    assert never[3].problems == ["autoCreateDevice: expected true or false, got 'maybe'"]
    always = rows_of(path, auto_create=True)
    assert always[0].item["autoCreateDevice"] is True
    assert "autoCreateDevice" not in always[1].item  # the row said false
    assert always[2].problems == ["deviceType is required when autoCreateDevice is true"]


def test_json_lines_rows_are_items_as_on_the_wire(tmp_path):
    path = write(
        tmp_path,
        "fleet.jsonl",
        json.dumps({"deviceIdentifier": "SN-1", "customerEmails": ["a@example.com"]})
        + "\n"
        + '{"deviceIdentifier": "SN-2", "customerEmails": ["b@example.com"], "deviceType": "T"}\n'
        + "{not json\n"
        + '["an", "array"]\n'
        + '{"deviceIdentifier": "SN-5", "customerEmails": "c@example.com"}\n'
        + '{"deviceIdentifier": "SN-6", "customerEmails": ["d@example.com"], "x": NaN}\n'
        + "   \n"
        + '{"deviceIdentifier": "SN-8", "customerEmails": ["e@example.com"], "colour": 1}\n',
    )
    rows = rows_of(path)
    assert [(type(r).__name__, r.line) for r in rows] == [
        ("Row", 1),
        ("Row", 2),
        ("BadRow", 3),
        ("BadRow", 4),
        ("BadRow", 5),
        ("BadRow", 6),
        ("BadRow", 8),
    ]
    assert rows[1].item["autoCreateDevice"] is True  # it names a deviceType
    assert rows[2].problems[0].startswith("not JSON: ")
    assert rows[3].problems == ["expected a JSON object, got list"]
    assert rows[4].problems == ["customerEmails: Input should be a valid list"]
    assert rows[5].problems == ["not JSON: NaN is not JSON"]
    assert rows[6].problems == ["colour: unknown field"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deviceIdentifier,emails\nSN-1,a@example.com\n", "the CSV header must name"),
        ("deviceIdentifier,customerEmails,owner\n", "the CSV header must name"),
        ("deviceIdentifier,customerEmails,customerEmails\n", "each once"),
    ],
)
def test_a_csv_file_with_a_wrong_header_is_refused_as_a_whole(tmp_path, text, expected):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(OnboardingError, match=expected):
        rows_of(path)


def test_a_file_that_is_not_utf8_is_refused_with_a_clear_reason(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + "SN-1,jos\xe9@example.com,T\n".encode("latin-1"))
    with pytest.raises(OnboardingError, match="is not UTF-8 text"):
        rows_of(path)


def test_the_format_comes_from_the_suffix_or_the_first_character(tmp_path):
    assert detect_format(write(tmp_path, "a.csv", "{")) == "csv"
    assert detect_format(write(tmp_path, "a.ndjson", "x")) == "jsonl"
    assert detect_format(write(tmp_path, "a.txt", '\n {"deviceIdentifier": 1}')) == "jsonl"
    assert detect_format(write(tmp_path, "b.txt", HEADER)) == "csv"


def rows(count: int, emails: int = 1) -> list[Row]:
    return [
        Row(
            n + 2,
            {
                "deviceIdentifier": f"SN-{n}",
                "customerEmails": [f"u{n}.{e}@example.com" for e in range(emails)],
            },
        )
        for n in range(count)
    ]


def test_batches_follow_the_file_order_and_their_keys_the_position():
    batches = list(make_batches(iter(rows(25)), key="k", batch_size=10))
    assert [len(b.items) for b in batches] == [10, 10, 5]
    assert [b.request_id for b in batches] == [
        "onboard-k-000000",
        "onboard-k-000001",
        "onboard-k-000002",
    ]
    assert batches[2].lines == list(range(22, 27))


def test_batches_are_cut_before_they_exceed_the_message_size_limit():
    # 100 addresses per row: ~2.2 KB per item, ~2.2 MB for 1,000 items
    batches = list(make_batches(iter(rows(1000, emails=100)), key="k", batch_size=1000))
    assert len(batches) == 3
    assert all(len(json.dumps(b.items)) < MAX_COMMAND_BYTES - 200 for b in batches)
    assert sum(len(b.items) for b in batches) == 1000


def test_keys_derive_from_the_content_and_the_options(tmp_path):
    from producers.onboarding import batch_key

    a = inspect_file(write(tmp_path, "a.csv", HEADER + "SN-1,a@example.com,T\n"))
    same = inspect_file(write(tmp_path, "same.csv", HEADER + "SN-1,a@example.com,T\n"))
    other = inspect_file(write(tmp_path, "other.csv", HEADER + "SN-1,b@example.com,T\n"))
    options = {"file_format": "csv", "batch_size": 1000, "auto_create": None}
    assert batch_key(a, **options) == batch_key(same, **options)
    assert batch_key(a, **options) != batch_key(other, **options)
    assert batch_key(a, **options) != batch_key(a, **{**options, "batch_size": 10})
    assert a.lines == 2


def fleet_file(path: Path, count: int) -> Path:
    with path.open("w") as out:
        out.write(HEADER)
        for n in range(count):
            out.write(f"SN-{n:08d},user{n}@example.com;family{n % 97}@example.org,Lock\n")
    return path


PEAK_RSS_PROGRAM = """
import sys
from pathlib import Path
from producers.onboarding import onboard
report = onboard(Path(sys.argv[1]), None, batch_size=1000)
assert report.rows == report.items, report
status = Path("/proc/self/status").read_text()
print(next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")))
"""


def peak_rss_kib(path: Path) -> int:
    """Peak resident memory of a fresh process that onboards ``path`` (a dry run)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_PROGRAM, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_memory_does_not_grow_with_the_number_of_rows(tmp_path):
    # Given two files, one ten times longer than the other
    small = peak_rss_kib(fleet_file(tmp_path / "small.csv", 20_000))
    large = peak_rss_kib(fleet_file(tmp_path / "large.csv", 200_000))
    # Then reading, checking and batching the long one takes no more memory
    # (keeping ~100 bytes per row would add ~17 MiB)
    assert large < small + 4 * 1024, (small, large)


def test_a_dry_run_checks_every_row_publishes_nothing_and_reports(tmp_path):
    path = write(
        tmp_path,
        "fleet.csv",
        HEADER + "SN-1,a@example.com,Lock\nSN-2,bad,Lock\nSN-3,c@example.com,Lock\n",
    )
    env = {"CUSTODY_HOME": str(tmp_path / "home"), "CUSTODY_BROKER_URL": "memory://"}
    result = CliRunner().invoke(
        cli, ["onboard", str(path), "--dry-run", "--json", "--batch-size", "1"], env=env
    )
    assert result.exit_code == 1, result.output  # one invalid row
    report = json.loads(result.output)
    assert (report["rows"], report["invalid"], report["items"], report["batches"]) == (3, 1, 2, 2)
    assert report["dryRun"] is True and report["answeredBatches"] == 0
    assert report["problems"] == [
        {
            "line": 3,
            "status": "invalid",
            "errorCode": "INVALID_REQUEST",
            "errorMessages": ["customerEmails: no valid e-mail address in 'bad'"],
        }
    ]
    assert not (tmp_path / "home").exists()  # nothing was set up, let alone published


def test_the_cli_refuses_a_bad_header_in_one_line(tmp_path):
    path = write(tmp_path, "bad.csv", "serial,emails\nSN-1,a@example.com\n")
    result = CliRunner().invoke(cli, ["onboard", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert "the CSV header must name deviceIdentifier, customerEmails" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--batch-size", "1001"], "1001 is not in the range 1<=x<=1000"),
        (["--batch-size", "0"], "0 is not in the range 1<=x<=1000"),
        (["--format", "xml"], "'xml' is not one of 'csv', 'jsonl'"),
        (["--max-batches", "many"], "'many' is not a valid integer"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path, options, expected):
    path = write(tmp_path, "fleet.csv", HEADER + "SN-1,a@example.com,Lock\n")
    result = CliRunner().invoke(cli, ["onboard", str(path), "--dry-run", *options])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_missing_file_is_refused_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["onboard", str(tmp_path / "nope.csv"), "--dry-run"])
    assert result.exit_code == 2
    assert "does not exist" in result.output
