"""Many simulated devices in one process: the API behind `trackersim fleet` and the benchmarks.

    summary = await run_fleet(FleetConfig(protocol="gl300", port=5004, devices=1000))
    print(summary.render())

All devices share one Scheduler (one loop timer) and one DeviceStats; each is an asyncio.Protocol
on its own TCP connection. The summary includes the simulator's own CPU time (getrusage), so a
figure such as "10,000 devices at 1 frame/s used 0.6 of one core" is measured, not estimated.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols import get_codec
from simulators.device import DeviceConfig, DeviceStats, SimDevice, State
from simulators.identity import DEFAULT_TAC, imei_for
from simulators.links import Backoff, TcpLink
from simulators.routes import Route, RouteSource
from simulators.scheduler import Scheduler

#: Protocols whose position reports are never acknowledged (unless SACK, for gl300).
_NO_POSITION_ACK = {"gps103": "gps103 positions", "tk103": "tk103 BR00 positions",
                    "gl300": "GL300 reports without SACK"}


@dataclass(slots=True)
class FleetConfig:
    protocol: str = "gl300"
    host: str = "127.0.0.1"
    #: None: the protocol's default port.
    port: int | None = None
    devices: int = 100
    #: Position frames per second per device.
    rate_per_s: float = 1.0
    #: How long devices report, counted from the first connection.
    duration_s: float = 60.0
    sack: bool = False
    heartbeat_interval_s: float = 60.0
    ack_timeout_s: float = 10.0
    max_retries: int = 3
    #: New connections per second while the fleet starts.
    connect_rate: float = 2000.0
    #: Device numbers first_index.. (IMEIs are stable per number, see identity.imei_for).
    first_index: int = 0
    tac: str = DEFAULT_TAC
    route: Route | None = None
    #: After the duration, how long to wait for acks still due before closing.
    settle_s: float = 3.0


@dataclass(slots=True)
class FleetProgress:
    elapsed_s: float
    duration_s: float
    devices: int
    online: int
    stats: DeviceStats


@dataclass(slots=True)
class FleetSummary:
    config: FleetConfig
    stats: DeviceStats
    online_at_end: int
    wall_s: float
    cpu_s: float
    #: The window after every device had connected (or the ramp ended) until the duration ended.
    steady_wall_s: float
    steady_cpu_s: float
    steady_frames: int
    loop: str
    latencies: list[float] = field(default_factory=list)
    #: Ack latencies that arrived in the steady window (after the connection ramp), sorted.
    steady_latencies: list[float] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        """CPU of this process as a percentage of one core, over the whole run."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def steady_cpu_percent(self) -> float:
        return 100.0 * self.steady_cpu_s / self.steady_wall_s if self.steady_wall_s else 0.0

    @property
    def steady_frames_per_s(self) -> float:
        return self.steady_frames / self.steady_wall_s if self.steady_wall_s else 0.0

    def percentile(self, p: float, *, steady: bool = False) -> float | None:
        """Ack latency percentile over the whole run, or over the steady window only."""
        values = self.steady_latencies if steady else self.latencies
        if not values:
            return None
        return values[min(len(values) - 1, round(p / 100.0 * (len(values) - 1)))]

    def render(self) -> str:
        s = self.stats
        c = self.config
        p50, p99 = self.percentile(50), self.percentile(99)

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v * 1000:.1f} ms"

        no_ack_note = ""
        if s.frames_no_ack:
            what = _NO_POSITION_ACK.get(c.protocol, "these frames")
            no_ack_note = (f"  ({what} have no ack in the protocol: sent, nothing to wait "
                           "for)")
        lines = [
            f"fleet: {c.devices} {c.protocol} devices -> {c.host}:{c.port}, "
            f"{c.rate_per_s:g} position/s each, {c.duration_s:g} s"
            + (", SACK" if c.sack else ""),
            f"  connected at the end   {self.online_at_end} / {c.devices}"
            f"   (connects {s.connects}, failed {s.connect_failures}, "
            f"dropped {s.disconnects})",
            f"  frames sent            {s.frames_sent}  (positions {s.positions_sent}, "
            f"skipped while overloaded {s.positions_skipped}, "
            f"buffered fixes replayed {s.fixes_replayed}, SOS {s.sos_sent})",
            f"  acknowledged           {s.frames_acked} of {s.frames_expecting_ack} frames "
            "that the protocol acknowledges",
            f"  without ack by design  {s.frames_no_ack}{no_ack_note}",
            f"  retransmitted          {s.retransmits}   (given up {s.gave_up}, "
            f"unanswered at the end {s.frames_expecting_ack - s.frames_acked})",
            f"  ack latency            p50 {ms(p50)}   p99 {ms(p99)}   "
            f"max {ms(self.latencies[-1] if self.latencies else None)}",
            f"  steady state           {self.steady_frames_per_s:,.0f} frames/s over "
            f"{self.steady_wall_s:.1f} s, ack latency p50 {ms(self.percentile(50, steady=True))}"
            f"   p99 {ms(self.percentile(99, steady=True))}",
            f"  simulator CPU          {self.cpu_s:.2f} s in {self.wall_s:.1f} s = "
            f"{self.cpu_percent:.0f}% of one core; steady state "
            f"{self.steady_cpu_percent:.0f}% of one core   (loop: {self.loop})",
        ]
        return "\n".join(lines)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_open_files_limit(needed: int) -> int:
    """Raise the soft limit of open files towards `needed` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return int(soft)


def loop_name() -> str:
    loop = asyncio.get_running_loop()
    module = type(loop).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


async def run_fleet(
    config: FleetConfig,
    *,
    progress: Callable[[FleetProgress], None] | None = None,
    progress_interval_s: float = 0.5,
    stop: asyncio.Event | None = None,
) -> FleetSummary:
    """Run `config.devices` devices for `config.duration_s` seconds; returns the summary.

    `progress` is called about every `progress_interval_s`. Setting `stop` ends the run early.
    """
    codec = get_codec(config.protocol)
    if config.port is None:
        config.port = codec.default_port
    limit = raise_open_files_limit(config.devices + 256)
    if limit < config.devices + 64:
        raise RuntimeError(f"open-files limit {limit} is too low for {config.devices} devices; "
                           f"raise it (ulimit -n {config.devices + 256})")
    loop = asyncio.get_running_loop()
    scheduler = Scheduler(loop)
    stats = DeviceStats()
    interval = 1.0 / config.rate_per_s
    device_config = DeviceConfig(
        position_interval_s=interval,
        heartbeat_interval_s=config.heartbeat_interval_s,
        ack_timeout_s=config.ack_timeout_s,
        max_retries=config.max_retries,
        sack=config.sack,
    )
    route = config.route or Route.generated()
    n = config.devices
    links: list[TcpLink] = []
    wall0, cpu0 = time.monotonic(), _cpu()
    for i in range(n):
        device = SimDevice(
            codec, imei_for(config.first_index + i, config.tac),
            source=RouteSource(route, offset_s=(i * 7.3) % max(route.duration_s, 1.0)),
            config=device_config, stats=stats, phase_s=interval * (i / n) + 0.5)
        links.append(TcpLink(device, config.host, config.port, scheduler,
                             backoff=Backoff(1.0, 30.0)))

    def online() -> int:
        return sum(1 for link in links if link.device.state is State.ONLINE)

    # Ramp: connect at `connect_rate`, in small batches.
    ramp_start = loop.time()
    step = 0.01
    per_step = max(1, int(config.connect_rate * step))
    for first in range(0, n, per_step):
        for link in links[first:first + per_step]:
            link.start()
        if stop is not None and stop.is_set():
            break
        await asyncio.sleep(max(0.0, ramp_start + (first + per_step) / config.connect_rate
                                - loop.time()))
    # Steady state starts once everybody is online (or after a grace period).
    end = ramp_start + config.duration_s
    steady_from = None
    next_progress = loop.time()
    steady_wall0 = steady_cpu0 = 0.0
    steady_frames0 = steady_acks0 = 0
    while loop.time() < end and not (stop is not None and stop.is_set()):
        now = loop.time()
        if steady_from is None and (online() == n or now - ramp_start > n / config.connect_rate
                                    + 5.0):
            steady_from = now
            steady_wall0, steady_cpu0, steady_frames0 = time.monotonic(), _cpu(), \
                stats.frames_sent
            steady_acks0 = len(stats.ack_latencies)
        if progress is not None and now >= next_progress:
            progress(FleetProgress(now - ramp_start, config.duration_s, n, online(), stats))
            next_progress = now + progress_interval_s
        await asyncio.sleep(min(0.1, max(0.0, end - now)))
    steady_wall, steady_cpu = time.monotonic(), _cpu()
    steady_frames = stats.frames_sent - steady_frames0
    steady_latencies = sorted(stats.ack_latencies[steady_acks0:]) if steady_from is not None \
        else []
    if steady_from is None:
        steady_wall0, steady_cpu0 = steady_wall, steady_cpu
    # Stop reporting; give outstanding acks a moment; close.
    for link in links:
        link.device.quiesce()
    settle_end = loop.time() + config.settle_s
    while loop.time() < settle_end and any(link.device.in_flight for link in links):
        await asyncio.sleep(0.05)
    at_end = online()
    drops = stats.disconnects  # before our own closing below
    if progress is not None:
        progress(FleetProgress(loop.time() - ramp_start, config.duration_s, n, at_end, stats))
    for link in links:
        link.stop()
    await asyncio.sleep(0)
    stats.disconnects = drops
    scheduler.close()
    wall, cpu = time.monotonic() - wall0, _cpu() - cpu0
    return FleetSummary(
        config=config, stats=stats, online_at_end=at_end, wall_s=wall, cpu_s=cpu,
        steady_wall_s=steady_wall - steady_wall0, steady_cpu_s=steady_cpu - steady_cpu0,
        steady_frames=steady_frames, loop=loop_name(), latencies=sorted(stats.ack_latencies),
        steady_latencies=steady_latencies)
