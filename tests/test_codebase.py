"""The architecture stays visible: imports point one way, nothing connects at import time,
and the code is linted and type-checked as part of the suite."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["models", "tasks", "worker", "producers", "subscribers", "cli"]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top_level_imports(package: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(REPO)): {name.split(".")[0] for name in imports_of(path)}
        for path in (REPO / package).rglob("*.py")
    }


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("models", {"tasks", "worker", "producers", "subscribers", "cli", "celery"}),
        ("tasks", {"worker", "producers", "subscribers", "cli"}),
        ("producers", {"worker", "tasks", "subscribers", "cli", "sqlalchemy", "celery"}),
        ("subscribers", {"worker", "tasks", "producers", "cli", "sqlalchemy", "celery"}),
        ("worker", {"cli", "producers", "subscribers"}),
    ],
)
def test_imports_point_one_way(package, forbidden):
    offenders = {
        f: sorted(i & forbidden) for f, i in top_level_imports(package).items() if i & forbidden
    }
    assert offenders == {}


def test_the_domain_imports_no_framework():
    allowed = {
        "__future__",
        "collections",
        "dataclasses",
        "datetime",
        "typing",
        "email_validator",
        "models",
        "zoneinfo",
        "enum",
        "functools",
        "itertools",
        "re",
        "math",
    }
    for path in [*(REPO / "models").glob("domain*.py"), REPO / "models" / "access.py"]:
        assert {i.split(".")[0] for i in imports_of(path)} <= allowed, path


def test_celery_lives_only_in_the_task_adapters_within_tasks():
    users = [f for f, i in top_level_imports("tasks").items() if "celery" in i]
    assert users == ["tasks/celery_tasks.py"]


def test_sqlalchemy_lives_only_in_storage_modules_within_models():
    users = {
        f for f, i in top_level_imports("models").items() if "sqlalchemy" in i or "alembic" in i
    }
    assert all(
        f
        in {
            "models/tables.py",
            "models/store.py",
            "models/store_sql.py",
            "models/database.py",
            "models/outbox_feed.py",
        }
        or "migrations" in f
        for f in users
    ), users


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_producers_and_subscribers_load_without_sqlalchemy_or_celery():
    result = run_python(
        "import sys, producers, subscribers, producers.client\n"
        "bad = sorted(m for m in ('sqlalchemy', 'celery') if m in sys.modules)\n"
        "assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr


def test_nothing_connects_at_import_time():
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
        if "migrations" not in p.parts and p.name != "__main__.py"
    )
    code = (
        "import socket, importlib\n"
        "def refuse(*a, **k): raise AssertionError('connected at import time')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_the_code_passes_its_linters(command):
    tool = shutil.which(command[0], path=str(Path(sys.executable).parent))
    assert tool, f"{command[0]} is part of the test extra; install with pip install -e '.[test]'"
    result = subprocess.run(
        [tool, *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
