"""Which command each task name carries, and the handler that applies it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.access_commands import GrantAccess, RevokeAccess, UpdateAccess
from models.bulk import AssignDevices
from models.commands import AssignDevice, Command, UnassignDevice
from models.commands import WireModel as Result
from models.ports import UnitOfWork
from tasks.assign_device import assign_device
from tasks.assign_devices import assign_devices
from tasks.grant_access import grant_access
from tasks.revoke_access import revoke_access
from tasks.unassign_device import unassign_device
from tasks.update_access import update_access

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
        CommandSpec(UnassignDevice, unassign_device),
        CommandSpec(GrantAccess, grant_access),
        CommandSpec(UpdateAccess, update_access),
        CommandSpec(RevokeAccess, revoke_access),
    ]
}
