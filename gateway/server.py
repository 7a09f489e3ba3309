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
from gateway.activation.codes import ServerKey, check_configured_key, load_server_key
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
from gateway.outbound.live import LiveHub
from gateway.store import secrets as server_secrets
from gateway.store.database import Database
from gateway.store.errors import explain as explain_database_error
from gateway.store.ingest import IngestItem, trim_frame_rings
from gateway.store.queries import forget_unclaimed_device
from gateway.store.writer import GroupCommitWriter
from gateway.web.app import create_app
from gateway.web.context import WebContext
from protocols.events import Alarm, AlarmType
from protocols.imei import is_check_device

log = logging.getLogger("gateway")

#: Longest wait at start for the database's first answer (it may be away: the gateway starts
#: anyway and the writer retries).
START_PROBE_TIMEOUT_S = 2.0


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
        #: Live updates for the owners' browsers (linked across instances on PostgreSQL).
        self.live: LiveHub | None = None
        self._signal_tasks: set[asyncio.Task[None]] = set()
        self._server_key = ServerKey()
        self._key_task: asyncio.Task[None] | None = None

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
        await self._check_database()

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
        await self._load_server_key(self.db)
        self.activation = self._start_activation(self.db)
        await self.activation.start()
        self.live = await LiveHub.start(settings.web, self.metrics, settings.database.url,
                                        self.db.dialect)
        self.pipeline = Pipeline(
            settings.protocols, max_frame_bytes=settings.tcp.max_frame_bytes,
            max_frames_per_s=settings.tcp.max_frames_per_s, metrics=self.metrics,
            store=self.writer, on_stored=self.on_stored, on_identified=self.on_identified,
            on_closed=self.on_stream_closed, instance=self.instance)
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
            mqtt_error=lambda: self.mqtt.last_error if self.mqtt is not None else None,
            live_state=self._live_state)
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

    async def _check_database(self) -> None:
        """gateway_store_up from the first second (it is otherwise set by each write), and the
        reason in the log when the database cannot be used, with what to do about it."""
        assert self.db is not None
        try:
            await asyncio.wait_for(self.db.check(), START_PROBE_TIMEOUT_S)
        except Exception as exc:
            self.metrics.store_up.set(0)
            reason = explain_database_error(exc, self.db.url) or str(exc) or type(exc).__name__
            log.warning("the database cannot be used yet; the gateway runs, withholds acks "
                        "and retries: %s", reason)
            return
        self.metrics.store_up.set(1)

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
        return ActivationService(db, settings.activation, settings.notify,
                                 build_notifier(settings.notify), self._server_key,
                                 metrics=self.metrics)

    async def _load_server_key(self, db: Database) -> None:
        """The server key: `activation.server_key` when set; on PostgreSQL the one key every
        instance shares in the database (created by `gateway db upgrade`, or here by the first
        instance to need it); on SQLite the key file. The database may be down at start: the
        gateway starts anyway, activation answers 503 until the key is read."""
        activation = self.settings.activation
        if activation.server_key:
            self._server_key.set(check_configured_key(activation.server_key))
        elif db.dialect != "postgresql":
            self._server_key.set(load_server_key("", activation.server_key_file))
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._read_shared_key(db), 5.0)
            if not self._server_key.ready:
                log.warning("the database has not answered: activation waits for the shared "
                            "server key (device ports are open)")
                self._key_task = asyncio.create_task(self._retry_shared_key(db))

    async def _read_shared_key(self, db: Database) -> None:
        value, created = await server_secrets.server_key(db)
        if created:
            log.warning("created the shared server key in the database (gateway db upgrade "
                        "does it once for every instance)")
        self._server_key.set(value.encode())

    async def _retry_shared_key(self, db: Database) -> None:
        while not self._server_key.ready:
            try:
                await self._read_shared_key(db)
                log.info("shared server key read from the database")
            except Exception as exc:  # still away: try again
                log.debug("server key not read", extra={"error": str(exc)})
                await asyncio.sleep(2.0)

    def _web_context(self, activation: ActivationService, db: Database) -> WebContext:
        """What the web app needs, and nothing else of the gateway."""

        health = self.health
        assert health is not None and self.pipeline is not None and self.live is not None
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
            ready=health.ready, online_devices=online_devices, web=settings.web,
            live=self.live, refresh_metrics=refresh_metrics, commands=self.commands)

    def on_stored(self, item: IngestItem) -> None:
        """A transport's item was committed: a stored SOS is the device signal of a claim.

        Transport-neutral: TCP and MQTT call it the same way. Bound devices' positions and
        alarms are also published as MQTT events from here (when `mqtt.publish_events`), reach
        the owners' live streams, a device's answer settles its command, and alarms are told to
        the device's owner.
        """
        if self.live is not None:
            self.live.stored(item)
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
                link = item.link
                task = asyncio.create_task(self.activation.device_signal(
                    item.device_id, item.protocol, item.received_at,
                    link=link.id if link is not None else None,
                    transport=link.transport if link is not None else None))
                self._signal_tasks.add(task)
                task.add_done_callback(self._signal_done)
                return

    def on_stream_closed(self, stream: Stream) -> None:
        """A device stream ended: the row of a `trackersim check` device goes with it."""
        device_id = stream.device_id
        if device_id is not None and is_check_device(device_id):
            task = asyncio.create_task(self._forget_check_device(stream, device_id))
            self._signal_tasks.add(task)
            task.add_done_callback(self._signal_done)

    async def _forget_check_device(self, stream: Stream, device_id: str) -> None:
        """Remove a check device once what it sent is settled, unless it came back meanwhile
        or belongs to someone (then it is no check device: it is kept)."""
        assert self.db is not None and self.pipeline is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.database.shutdown_timeout_s
        while stream.uncommitted and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if device_id in self.pipeline.online:
            return
        try:
            forgotten = await forget_unclaimed_device(self.db, device_id)
        except Exception as exc:  # the database may be away: the row stays, nothing else
            log.warning("check device not removed", extra={"device": device_id,
                                                           "error": str(exc)})
            return
        if forgotten:
            log.info("check device removed", extra={"device": device_id})

    def _live_state(self) -> str:
        bus = self.live.bus if self.live is not None else None
        if bus is None:
            return "in-process"
        return "up" if bus.up else "down"

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
        if self.live is not None:
            await self.live.close()  # open streams would keep the web app from stopping
        if self._web is not None and self._web_task is not None and not self._web_task.done():
            self._web.should_exit = True
            await self._web_task
        elif self._web_task is None and self._http_sock is not None:
            self._http_sock.close()  # bound, but the start failed before the web app ran
        if self._writer_db is not None and self._writer_db is not self.db:
            await self._writer_db.dispose()
        if self._key_task is not None:
            self._key_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._key_task
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
