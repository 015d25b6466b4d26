"""One input of raw bytes through everything a sender reaches, for coverage-guided fuzzing
(atheris) and for replaying inputs by hand. The first byte picks the way in: as a whole
message body behind good headers, or as a command (JSON) signed or not."""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from typing import Any

from models import constants as c
from models.keystore import MasterKey
from models.signing import sign
from tasks.authenticate import Authenticator
from tasks.pipeline import Delivery, process
from tests.backends import TEST_MASTER_KEY, FakeBackend
from tests.fuzz.checks import Message, check_result, check_storable
from worker.consumer import bury_message, inspect_message

MASTER_KEY = MasterKey.from_text(TEST_MASTER_KEY)
BACKEND = FakeBackend(MASTER_KEY)
ORG = BACKEND.new_org()
EMPTY = copy.deepcopy(BACKEND.db.state)
REQUIRED = Authenticator(MASTER_KEY, required=True)
OPTIONAL = Authenticator(MASTER_KEY, required=False)


def one_input(data: bytes) -> None:
    """Raises only when custody mishandles the input."""
    BACKEND.db.state = copy.deepcopy(EMPTY)
    mode, raw = (data[0] % 3, data[1:]) if data else (0, b"")
    if mode == 0:
        _message(raw)
    else:
        _command(raw, signed=mode == 2)
    check_storable(BACKEND)


def _message(body: bytes) -> None:
    message = Message(body=body, headers={"task": c.ASSIGN_DEVICE, "id": str(uuid.uuid4())})
    problem = inspect_message(message)
    if problem is not None:
        bury_message(BACKEND.uow, message, problem)
        return
    (command,), _kwargs, _embed = json.loads(body)
    check_result(_process(command, REQUIRED), secrets=set())


def _command(raw: bytes, *, signed: bool) -> None:
    try:
        command = json.loads(raw)
    except (ValueError, RecursionError):
        return  # not JSON: the envelope check's case, fuzzed by the other way in
    if isinstance(command, dict):
        command = {**command, "organizationId": ORG}
        if signed:
            with contextlib.suppress(ValueError):  # NaN or a lone surrogate cannot be signed
                command = sign(command, BACKEND.key_for(ORG))
    authenticator = REQUIRED if signed else OPTIONAL
    check_result(_process(command, authenticator), secrets={BACKEND.key_for(ORG).secret})


def _process(command: Any, authenticator: Authenticator) -> dict[str, Any]:
    delivery = Delivery(c.ASSIGN_DEVICE, str(uuid.uuid4()), command)
    return process(delivery, BACKEND.uow, authenticator=authenticator).result


SEEDS = [
    b"\x00" + json.dumps([[{"requestId": "r", "deviceIdentifier": "SN"}], {}, {}]).encode(),
    b"\x01"
    + json.dumps(
        {"requestId": "r", "deviceIdentifier": "SN", "customerEmails": ["a@b.c"]}
    ).encode(),
    b"\x02"
    + json.dumps(
        {
            "requestId": "r",
            "deviceIdentifier": "SN",
            "customerEmails": ["a@b.c"],
            "autoCreateDevice": True,
            "deviceType": "T",
        }
    ).encode(),
    b"\x02" + b'{"requestId": "\\ud800", "x": NaN}',
    b"\x00" + b"[" * 3000,
]
