"""Which command each task name carries, and the handler that applies it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.bulk import AssignDevices
from models.commands import AssignDevice, Command
from models.commands import WireModel as Result
from models.ports import UnitOfWork
from tasks.assign_device import assign_device
from tasks.assign_devices import assign_devices

Handler = Callable[[Any, UnitOfWork], Result]


@dataclass(frozen=True)
class CommandSpec:
    model: type[Command]
    handler: Handler

    @property
    def task_name(self) -> str:
        return self.model.task_name


COMMANDS: dict[str, CommandSpec] = {
    spec.task_name: spec
    for spec in [
        CommandSpec(AssignDevice, assign_device),
        CommandSpec(AssignDevices, assign_devices),
    ]
}
