"""One gateway process: database, group-commit writer, TCP listeners and the web app on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Collection, Iterator

import uvicorn

from gateway import logs
from gateway.activation import ActivationService
from gateway.activation.codes import load_server_key
from gateway.config import Settings
from gateway.devices.mqtt import MqttTransport
from gateway.devices.pipeline import Pipeline, Stream
from gateway.devices.tcp import TcpServer
from gateway.health import Health
from gateway.metrics import Metrics
from gateway.notify import build_notifier
from gateway.outbound.alarms import AlarmNotifier
from gateway.outbound.commands import CommandService
from gateway.outbound.events import EventPublisher
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, trim_frame_rings
from gateway.store.writer import GroupCommitWriter
from gateway.web.app import create_app
from gateway.web.context import WebContext
from protocols.events import Alarm, AlarmType

log = logging.getLogger("gateway")


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway drains devices first on SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bound_socket(host: str, port: int, what: str, key: str) -> socket.socket:
    """A socket bound to host:port, not listening yet (clients are refused until it is)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port} for {what} ({exc.strerror}); "
                                 f"free the port or change {key}") from exc
    sock.setblocking(False)
    return sock


class Gateway:
    """Start with `await gateway.start()`, stop with `await gateway.stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db: Database | None = None
        self._writer_db: Database | None = None
        self.writer: GroupCommitWriter | None = None
        self.pipeline: Pipeline | None = None
        self.tcp: TcpServer | None = None
        self.mqtt: MqttTransport | None = None
        self.events: EventPublisher | None = None
        self.commands: CommandService | None = None
        self.alarms: AlarmNotifier | None = None
        self.health: Health | None = None
        self._web: _EmbeddedUvicorn | None = None
        self._web_task: asyncio.Task[None] | None = None
        self.http_port: int | None = None
        self._http_sock: socket.socket | None = None
        #: This instance's name (instance.name, or host name and HTTP port).
        self.instance = settings.instance_name()
        self.activation: ActivationService | None = None
        self._signal_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        settings = self.settings
        for warning in settings.deprecations:
            log.warning("configuration: %s", warning)
        # Bound first (listening only once everything is up): the web app's port names the
        # instance when instance.name is empty. Bound here rather than by uvicorn, which exits
        # the process when it cannot bind.
        http_sock = _bound_socket(settings.http.host, settings.http.port, "the web app",
                                  "http.port")
        self._http_sock = http_sock
        self.http_port = http_sock.getsockname()[1]
        self.instance = settings.instance_name(self.http_port)
        logs.set_instance(self.instance)
        self.metrics.instance_info.labels(self.instance).set(1)
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

        if self.db.dialect == "postgresql" or self.db.is_file:
            # The writer's own connections, one per concurrent batch (always one on SQLite).
            # PostgreSQL: no test round trip per batch (a broken connection fails the batch,
            # which is retried on a new one). SQLite: the connection's page cache stays valid
            # from one commit to the next; batches spread over a pool's connections made each
            # re-read the pages the previous one had written on another connection.
            postgresql = self.db.dialect == "postgresql"
            self._writer_db = Database.create(
                settings.database.url, max_overflow=0, pre_ping=False,
                pool_size=settings.database.batch_concurrency if postgresql else 1)
        else:  # an in-memory SQLite database exists only on its own engine
            self._writer_db = self.db
        self.writer = GroupCommitWriter(
            self._writer_db,
            max_batch=settings.database.batch_max,
            max_delay_ms=settings.database.batch_delay_ms,
            max_pending=settings.database.queue_max,
            concurrency=settings.database.batch_concurrency,
            frames_per_device=settings.database.frames_per_device,
            on_commit=on_commit,
            on_failure=on_failure,
        )
        self.writer.start()
        await self._trim_frame_rings()
        self.activation = self._start_activation(self.db)
        await self.activation.start()
        self.pipeline = Pipeline(
            settings.protocols, max_frame_bytes=settings.tcp.max_frame_bytes,
            max_frames_per_s=settings.tcp.max_frames_per_s, metrics=self.metrics,
            store=self.writer, on_stored=self.on_stored, on_identified=self.on_identified)
        self.commands = CommandService(
            self.db, settings.commands, instance=self.instance, pipeline=self.pipeline,
            confirmations=self.activation.confirmations, metrics=self.metrics)
        self.alarms = AlarmNotifier(
            self.db, settings.alarms, settings.notify, self.activation.engine.notifier,
            public_url=settings.http.public_url, metrics=self.metrics)
        self.tcp = TcpServer(settings.tcp, self.pipeline, self.metrics)
        await self.tcp.start()
        tcp = self.tcp
        self.health = Health(
            self.db, self.writer, instance=self.instance,
            connections=lambda: tcp.connection_count, tcp_ports=lambda: dict(tcp.ports),
            mqtt_state=lambda: self.mqtt.state if self.mqtt is not None else "disabled",
            mqtt_error=lambda: self.mqtt.last_error if self.mqtt is not None else None)
        if settings.mqtt.enabled:
            # Never fails because of the broker: it connects (and reconnects) in the background.
            mqtt = self.mqtt = MqttTransport(
                settings.mqtt, self.pipeline, self.metrics, instance=self.instance,
                drain_timeout_s=settings.database.shutdown_timeout_s)
            await mqtt.start()
            self.commands.mqtt = mqtt
            if settings.mqtt.publish_events:
                self.events = EventPublisher(settings.mqtt, mqtt.publish,
                                             lambda: mqtt.state == "up", self.db, self.metrics,
                                             instance=self.instance)
                await self.events.start()
        await self.commands.start()
        app = create_app(self._web_context(self.activation, self.db))
        # proxy_headers off: uvicorn would believe X-Forwarded-For from any loopback peer;
        # the web app reads it only from http.trusted_proxies (rule 27).
        config = uvicorn.Config(
            app, host=settings.http.host, port=settings.http.port, log_config=None,
            lifespan="off", access_log=False, proxy_headers=False)
        self._web = _EmbeddedUvicorn(config)
        http_sock.listen(2048)  # only now: health checks reaching it find the gateway started
        self._web_task = asyncio.create_task(self._web.serve(sockets=[http_sock]))
        while not self._web.started:
            if self._web_task.done():
                self._web_task.result()
                raise RuntimeError("the web app stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("gateway started", extra={
            "tcp": self.tcp.ports, "http": f"{settings.http.host}:{self.http_port}",
            "database": self.db.url.render_as_string(hide_password=True)})

    def _start_activation(self, db: Database) -> ActivationService:
        settings = self.settings
        if settings.activation.proof == "contact_only":
            log.warning("activation.proof is 'contact_only': codes go to whatever contact the "
                        "claimant types, so anyone who knows an IMEI can take the device; "
                        "use it in a lab only")
        if settings.notify.channel == "outbox":
            log.warning("notify.channel is 'outbox': one-time codes are written in clear to "
                        "%s; set notify.channel to email or sms in production",
                        settings.notify.outbox_path)
        key = load_server_key(settings.activation.server_key,
                              settings.activation.server_key_file)
        return ActivationService(db, settings.activation, settings.notify,
                                 build_notifier(settings.notify), key, metrics=self.metrics)

    def _web_context(self, activation: ActivationService, db: Database) -> WebContext:
        """What the web app needs, and nothing else of the gateway."""

        health = self.health
        assert health is not None and self.pipeline is not None
        pipeline = self.pipeline

        def online_devices() -> Collection[str]:
            return pipeline.online.keys()

        def refresh_metrics() -> None:
            if self.writer is not None:
                self.metrics.store_pending.set(self.writer.pending)

        settings = self.settings
        return WebContext(
            activation=activation, db=db, http=settings.http, admin=settings.admin,
            metrics_settings=settings.metrics, metrics=self.metrics, health=health.live,
            ready=health.ready, online_devices=online_devices, refresh_metrics=refresh_metrics,
            commands=self.commands)

    def on_stored(self, item: IngestItem) -> None:
        """A transport's item was committed: a stored SOS is the device signal of a claim.

        Transport-neutral: TCP and MQTT call it the same way. Bound devices' positions and
        alarms are also published as MQTT events from here (when `mqtt.publish_events`), a
        device's answer settles its command, and alarms are told to the device's owner.
        """
        if self.events is not None:
            self.events.device_stored(item)
        if self.commands is not None:
            self.commands.stored(item)
        if self.alarms is not None:
            self.alarms.stored(item)
        if self.activation is None:
            return
        for event in item.events:  # a loop, not any(): called for every committed frame
            if isinstance(event, Alarm) and event.alarm is AlarmType.SOS:
                task = asyncio.create_task(self.activation.device_signal(
                    item.device_id, item.protocol, item.received_at))
                self._signal_tasks.add(task)
                task.add_done_callback(self._signal_done)
                return

    def on_identified(self, stream: Stream) -> None:
        """A device came online on this instance: the commands waiting for it go out."""
        if self.commands is not None:
            self.commands.device_online(stream)

    def _signal_done(self, task: asyncio.Task[None]) -> None:
        self._signal_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("device signal not handled", exc_info=task.exception())

    async def _trim_frame_rings(self) -> None:
        """After frames_per_device was lowered, drop ring slots beyond the new size."""
        assert self.db is not None
        try:
            await trim_frame_rings(self.db, self.settings.database.frames_per_device)
        except Exception as exc:  # the database may be away at start: the gateway still runs
            log.warning("could not trim the frame rings", extra={"error": str(exc)})

    async def stop(self) -> None:
        """SIGTERM: stop accepting, store what was received, send the acks now due, close."""
        log.info("gateway stopping")
        if self.health is not None:
            self.health.stopping = True
        if self.tcp is not None:
            await self.tcp.stop()
        if self.events is not None:
            await self.events.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.writer is not None:
            await self.writer.close(drain=True, timeout=self.settings.database.shutdown_timeout_s)
        if self._signal_tasks:
            await asyncio.gather(*list(self._signal_tasks), return_exceptions=True)
        if self.commands is not None:
            await self.commands.stop()
        if self.alarms is not None:
            await self.alarms.stop()
        if self.activation is not None:
            await self.activation.drain()
            await self.activation.close()
        if self._web is not None and self._web_task is not None and not self._web_task.done():
            self._web.should_exit = True
            await self._web_task
        elif self._web_task is None and self._http_sock is not None:
            self._http_sock.close()  # bound, but the start failed before the web app ran
        if self._writer_db is not None and self._writer_db is not self.db:
            await self._writer_db.dispose()
        if self.health is not None:
            await self.health.close()
        if self.db is not None:
            await self.db.dispose()
        log.info("gateway stopped")


#: Allocations (net) between young collections; CPython's default is 700.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Keep CPython's cycle collector from stalling the loop under load.

    With the defaults, frames waiting for their commit survive young collections by the
    thousand, so full collections run every second or two and scan every object of the
    process (SQLAlchemy, FastAPI, the connections): measured at 5,000 devices sending 1/s,
    each took 100-500 ms and together a quarter of the CPU, while finding nothing to free
    (what the gateway drops is freed by reference counting). Objects that live as long as the
    process are moved out of the collector's sight once started (`gc.freeze`), and young
    collections run every 50,000 net allocations instead of 700, so short-lived objects are
    gone before they are scanned. Cycles are still collected, just less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


async def run(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
        tune_garbage_collector()
        await stop.wait()
    finally:
        await gateway.stop()
