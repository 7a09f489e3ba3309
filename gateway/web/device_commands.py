"""What the device page shows of commands and alarms (the page itself is in `pages.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from gateway.outbound.commands import DANGEROUS, supported_types, utcnow
from gateway.store import commands as command_store
from gateway.store.owned import OwnedDevice, owner_alarms
from gateway.web.context import WebContext

#: Button labels of the command types, in the order the page shows them.
LABELS = {
    "position_single": "Request position",
    "report_interval": "Set report interval",
    "reboot": "Reboot",
    "engine_stop": "Stop engine…",
    "engine_resume": "Resume engine…",
}
#: How commands and statuses read on the page.
NAMES = {"position_single": "position request", "report_interval": "report interval",
         "reboot": "reboot", "engine_stop": "engine stop", "engine_resume": "engine resume"}


async def device_commands_and_alarms(
    request: Request, ctx: WebContext, device: OwnedDevice
) -> dict[str, Any]:
    """The template values of the device page's Commands and Alarms sections."""
    supported = supported_types(device.protocol) if ctx.commands is not None else []
    dangerous = {kind.value for kind in DANGEROUS}
    return {
        "commands": await command_store.commands_of_bindings(
            ctx.db, device.binding_ids, limit=20, now=utcnow()),
        "command_buttons": [(t, LABELS[t]) for t in LABELS
                            if t in supported and t not in dangerous],
        "engine_buttons": [(t, LABELS[t]) for t in LABELS if t in supported and t in dangerous],
        "command_names": NAMES,
        "command_queued": request.query_params.get("command"),
        "alarms": await owner_alarms(ctx.db, device.binding_ids, limit=20),
    }
