"""One gateway process: database, group-commit writer, TCP listeners and the web app on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, trim_frame_rings
from gateway.store.writer import GroupCommitWriter
from gateway.tcp import TcpServer
from gateway.web.app import create_app

log = logging.getLogger("gateway")


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway drains devices first on SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    """Start with `await gateway.start()`, stop with `await gateway.stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db: Database | None = None
        self.writer: GroupCommitWriter | None = None
        self.tcp: TcpServer | None = None
        self._web: _EmbeddedUvicorn | None = None
        self._web_task: asyncio.Task[None] | None = None
        self.http_port: int | None = None

    async def start(self) -> None:
        settings = self.settings
        # SQLite is migrated here (the embedded default needs no separate step); PostgreSQL by
        # `gateway db upgrade`, so that several instances never race to migrate.
        self.db = await Database.connect(settings.database.url)
        metrics = self.metrics

        def on_commit(items: int, seconds: float) -> None:
            metrics.store_batch_size.observe(items)
            metrics.store_commit_seconds.observe(seconds)
            metrics.store_up.set(1)

        def on_failure(error: BaseException) -> None:
            metrics.store_failures.inc()
            metrics.store_up.set(0)
            log.warning("database write failed; acks are withheld until it recovers",
                        extra={"error": str(error)})

        self.writer = GroupCommitWriter(
            self.db,
            max_batch=settings.database.batch_max,
            max_delay_ms=settings.database.batch_delay_ms,
            max_pending=settings.database.queue_max,
            frames_per_device=settings.database.frames_per_device,
            on_commit=on_commit,
            on_failure=on_failure,
        )
        self.writer.start()
        await self._trim_frame_rings()
        self.tcp = TcpServer(settings.tcp, self.metrics, self._submit)
        await self.tcp.start()
        app = create_app(self)
        config = uvicorn.Config(
            app, host=settings.http.host, port=settings.http.port, log_config=None,
            lifespan="off", access_log=False)
        self._web = _EmbeddedUvicorn(config)
        self._web_task = asyncio.create_task(self._web.serve())
        while not self._web.started:
            if self._web_task.done():
                await self._web_task
                raise RuntimeError(
                    f"the web app could not listen on {settings.http.host}:{settings.http.port}")
            await asyncio.sleep(0.01)
        servers = getattr(self._web, "servers", [])
        if servers:
            self.http_port = servers[0].sockets[0].getsockname()[1]
        log.info("gateway started", extra={
            "tcp": self.tcp.ports, "http": f"{settings.http.host}:{self.http_port}",
            "database": self.db.url.render_as_string(hide_password=True)})

    async def _trim_frame_rings(self) -> None:
        """After frames_per_device was lowered, drop ring slots beyond the new size."""
        assert self.db is not None
        try:
            await trim_frame_rings(self.db, self.settings.database.frames_per_device)
        except Exception as exc:  # the database may be away at start: the gateway still runs
            log.warning("could not trim the frame rings", extra={"error": str(exc)})

    def _submit(self, item: IngestItem) -> asyncio.Future[None]:
        assert self.writer is not None
        return self.writer.submit_future(item)

    async def stop(self) -> None:
        """SIGTERM: stop accepting, store what was received, send the acks now due, close."""
        log.info("gateway stopping")
        if self.tcp is not None:
            await self.tcp.stop()
        if self.writer is not None:
            await self.writer.close(drain=True, timeout=self.settings.database.shutdown_timeout_s)
        if self._web is not None and self._web_task is not None:
            self._web.should_exit = True
            await self._web_task
        if self.db is not None:
            await self.db.dispose()
        log.info("gateway stopped")


async def run(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
