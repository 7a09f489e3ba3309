"""`GET /api/v1/devices/{imei}/live`: a signed-in owner's device, live, as Server-Sent Events.

The stream says, in order:

* `retry` (how long a browser waits before reconnecting), then `event: ready` once the
  subscription is in place: what was committed before may be missing, so a client fetches
  `GET .../positions?since=<its newest fix>` then, and again after every reconnect;
* `event: position` and `event: alarm`, each as committed, with the JSON of the MQTT events
  (`type`, `imei`, `protocol`, `received_at`, ...);
* `: keepalive` comments every `web.live_heartbeat_s` seconds, for proxies;
* `event: reload` when events were dropped (the browser did not keep up: the stream then ends)
  or may have been missed (another instance's link was down): fetch the positions again;
* `event: ended` when the device is no longer the owner's or the session ended; the stream
  ends and a client should not reconnect.

Before each batch of events and at each heartbeat, the session and the device's binding are
checked again, after the events' commit: nothing committed after a release is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.activation import OwnerInfo
from gateway.activation.account import AccountFlow
from gateway.outbound.live import LiveHub, LiveStreamRefused, Subscription
from gateway.store import queries
from gateway.store.database import Database
from gateway.web.api_owner import one_device
from gateway.web.deps import SESSION_COOKIE, Account, Context, Db, require_owner

log = logging.getLogger("gateway.live")

router = APIRouter(prefix="/api/v1", tags=["owner"])

Owner = Annotated[OwnerInfo, Depends(require_owner)]

#: Milliseconds a browser waits before reconnecting a stream that ended or broke.
RETRY_MS = 3000

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-Sent Events: `ready`, then `position` and `alarm` as they "
                         "are committed; `reload` and `ended` (see the module documentation)",
          "content": {"text/event-stream": {}}},
    404: {"description": "not your device, or no longer yours"},
    429: {"description": "too many live streams of yours open here"},
    503: {"description": "too many live streams open here, or the gateway is restarting"},
}


@router.get("/devices/{imei}/live", response_class=StreamingResponse, responses=_STREAM_DOC)
async def live(
    imei: str, request: Request, owner: Owner, db: Db, ctx: Context, account: Account,
) -> Response:
    """Your device's positions and alarms as they are committed (Server-Sent Events), while
    the device is yours."""
    device = await one_device(db, owner, imei)
    if not device.current:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"device {imei} is no longer yours: its history stays at "
                            f"/api/v1/devices/{imei}/positions; there are no live updates")
    try:
        sub = await ctx.live.subscribe(device.imei, owner.id)
    except LiveStreamRefused as exc:
        headers = {"Retry-After": "30"} if exc.status in (429, 503) else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
    stream = _Stream(ctx.live, sub, db, account, request.cookies.get(SESSION_COOKIE, ""),
                     ctx.web.live_heartbeat_s)
    return _LiveResponse(stream)


class _Stream:
    def __init__(self, hub: LiveHub, sub: Subscription, db: Database, account: AccountFlow,
                 session: str, heartbeat_s: float) -> None:
        self.hub = hub
        self.sub = sub
        self.db = db
        self.account = account
        self.session = session
        self.heartbeat_s = heartbeat_s

    async def events(self) -> AsyncIterator[str]:
        sub = self.sub
        try:
            ready = json.dumps({"imei": sub.device_id, "heartbeat_s": self.heartbeat_s})
            yield f"retry: {RETRY_MS}\nevent: ready\ndata: {ready}\n\n"
            while True:
                events = await sub.next(self.heartbeat_s)
                if sub.closed:
                    return  # the gateway stops: the browser reconnects after `retry`
                ended = await self._ended()
                if ended:
                    yield _event("ended", {"reason": ended})
                    return
                if ended is None:  # not known whose the device is now: send nothing of it
                    events = []
                    sub.resync_due = True
                if sub.overflowed:
                    yield _event("reload", {"reason": "too many events waited for this "
                                                      "browser: reload what you show"})
                    return
                chunk = "".join(f"event: {kind}\ndata: {data}\n\n" for kind, data in events)
                if sub.resync_due:
                    sub.resync_due = False
                    chunk += _event("reload", {"reason": "events may have been missed: reload "
                                                         "what you show"})
                yield chunk or ": keepalive\n\n"
        finally:
            self.hub.unsubscribe(sub)

    async def _ended(self) -> str | None:
        """Why the stream must end now (no longer the owner's device, session over); "" when
        it goes on; None when that cannot be told (the database is away)."""
        try:
            owner = await self.account.owner_for_session(self.session)
            if owner is None or owner.id != self.sub.owner_id:
                return "your session ended: sign in again"
            binding = await queries.current_binding(self.db, self.sub.device_id)
        except Exception as exc:  # the database is away: nothing is committed meanwhile
            log.debug("live stream: ownership not checked", extra={"error": str(exc)})
            return None
        if binding is None or binding.owner_id != self.sub.owner_id:
            return "this device is no longer yours"
        return ""


def _event(kind: str, body: dict[str, str]) -> str:
    return f"event: {kind}\ndata: {json.dumps(body)}\n\n"


class _LiveResponse(StreamingResponse):
    """The stream's subscription is dropped however the response ends, even when the client
    went away before its first byte (the generator then never runs)."""

    def __init__(self, stream: _Stream) -> None:
        super().__init__(stream.events(), media_type="text/event-stream", headers={
            # no-transform: no proxy may compress or buffer the stream; X-Accel-Buffering:
            # nginx passes each event on at once.
            "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"})
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.hub.unsubscribe(self.stream.sub)
