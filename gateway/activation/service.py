"""`ActivationService`: the flows of device activation over one shared code engine.

* `claims`: claim a device (contact of record, claim key, device signal);
* `sign_in`: owners sign in by code or authenticator app;
* `releases`: an owner releases their device;
* `confirmations`: a fresh code confirming an owner's engine command (the release's own kind);
* `account`: sessions and the authenticator app;
* `provisioning`: contacts of record, claim keys, CSV import, unlock.

One per gateway; safe for concurrent requests (all state is in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from gateway.activation.account import AccountFlow
from gateway.activation.claims import ClaimFlow
from gateway.activation.codes import ServerKey
from gateway.activation.confirm import OwnerConfirmation
from gateway.activation.engine import CodeEngine, utcnow
from gateway.activation.provisioning import Provisioning
from gateway.activation.releases import ReleaseFlow
from gateway.activation.signin import SignInFlow
from gateway.config import ActivationSettings, NotifySettings
from gateway.metrics import Metrics
from gateway.notify import Notifier
from gateway.store import claiming, queries
from gateway.store.database import Database

log = logging.getLogger("gateway.activation")

#: How often lapsed device locks are turned back into claimable devices.
LAPSE_EVERY_S = 60.0


class ActivationService:
    def __init__(
        self,
        db: Database,
        settings: ActivationSettings,
        notify_settings: NotifySettings,
        notifier: Notifier,
        server_key: bytes | ServerKey,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.engine = CodeEngine(db, settings, notify_settings, notifier, server_key, metrics)
        self.claims = ClaimFlow(self.engine)
        self.sign_in = SignInFlow(self.engine)
        self.releases = ReleaseFlow(self.engine)
        #: Codes confirming an owner's dangerous commands (engine stop and resume).
        self.confirmations = OwnerConfirmation(self.engine)
        self.account = AccountFlow(self.engine)
        self.provisioning = Provisioning(self.engine)
        self._lapse_task: asyncio.Task[None] | None = None

    @property
    def key(self) -> bytes:
        return self.engine.key

    @property
    def comparisons(self) -> int:
        """Code comparisons made so far (rule 5)."""
        return self.engine.comparisons

    async def start(self) -> None:
        """Start the background upkeep. Touches no database here: the gateway starts (and
        keeps its device ports open) while the database is down."""
        self._lapse_task = asyncio.create_task(self._upkeep())

    async def _upkeep(self) -> None:
        """Seal TOTP secrets an older version left in clear (once it works), then, every
        minute, turn devices whose lock lapsed back into claimable ones."""
        sealed = False
        while True:
            try:
                if not sealed:
                    await self.account.seal_clear_secrets()
                    sealed = True
                now = utcnow()
                await claiming.lapse_locks(self.db, now)
                await claiming.forget_old_links(self.db, now - timedelta(days=1))
                await self.forget_stale_devices(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; try again later
                log.warning("activation upkeep failed; retrying in a minute",
                            extra={"error": str(exc)})
            await asyncio.sleep(LAPSE_EVERY_S)

    async def forget_stale_devices(self, now: datetime) -> int:
        """Delete unclaimed devices unseen for `activation.forget_unclaimed_after_days`
        (up to 1,000 a run: the upkeep runs every minute)."""
        days = self.settings.forget_unclaimed_after_days
        if not days:
            return 0
        forgotten = await queries.forget_stale_devices(self.db, now - timedelta(days=days))
        if forgotten:
            log.info("unclaimed devices forgotten", extra={"devices": forgotten, "days": days})
        return forgotten

    async def device_signal(
        self, device_id: str, protocol: str, at: datetime, *, link: str | None = None,
        transport: str | None = None,
    ) -> None:
        """A stored SOS frame of `device_id`, received on `link` (see
        `ClaimFlow.device_signal`)."""
        await self.claims.device_signal(device_id, protocol, at, link=link, transport=transport)

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        await self.engine.drain()

    async def close(self) -> None:
        if self._lapse_task is not None:
            self._lapse_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lapse_task
        await self.engine.close()
