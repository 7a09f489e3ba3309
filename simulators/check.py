"""`trackersim check`: is this gateway port ready for real devices? Pass or fail, and what to fix.

Connects as a test device (the same SimDevice behaviour as every simulator), verifies the login
and heartbeat replies, sends a position (and checks its acknowledgement where the protocol has
one), presses SOS, and explains each failure: nothing listening (wrong port, gateway down), no
answer (another protocol on that port, or frames rejected), the web port instead of a device
port, SACK expected but not enabled.

Check traffic is marked, and cleaned up: unless `--imei` names a device, the check plays
devices with IMEIs under `protocols.imei.CHECK_TAC`, and the gateway removes such a device's
row when its connection ends, so that checking a port leaves no unclaimed device behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols import get_codec, names
from protocols.imei import CHECK_TAC, is_check_device
from simulators.device import DeviceConfig, Outbound, SimDevice, State, protocol_options
from simulators.identity import random_imei
from simulators.routes import Route, RouteSource

PASS, FAIL, INFO = "PASS", "FAIL", "INFO"


def check_imei() -> str:
    """A random IMEI of a check device (the gateway removes its row when the check ends)."""
    return random_imei(tac=CHECK_TAC)


@dataclass(slots=True)
class Step:
    name: str
    status: str  # PASS, FAIL or INFO
    detail: str
    fix: str | None = None


@dataclass(slots=True)
class CheckResult:
    host: str
    port: int
    protocol: str
    imei: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.status != FAIL for s in self.steps)

    def render(self) -> str:
        lines = [f"trackersim check {self.host}:{self.port} as a {self.protocol} device "
                 f"(IMEI {self.imei})"]
        for step in self.steps:
            lines.append(f"  [{step.status}] {step.name}: {step.detail}")
            if step.fix:
                lines.append(f"         -> {step.fix}")
        if is_check_device(self.imei):
            lines.append("  (a check device: the gateway removes it when the check ends)")
        lines.append("RESULT: " + ("PASS - this port is ready for "
                                   f"{self.protocol} devices" if self.ok else "FAIL"))
        return "\n".join(lines)


def _default_ports() -> str:
    return ", ".join(f"{name} {get_codec(name).default_port}" for name in names())


def guess_protocol(port: int) -> str | None:
    for name in names():
        if get_codec(name).default_port == port:
            return name
    return None


class _Session:
    """A SimDevice driven step by step over an asyncio stream (no timers: the check decides)."""

    def __init__(self, device: SimDevice, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.device = device
        self.reader = reader
        self.writer = writer
        self.received = b""
        self.closed_by_peer = False
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, device: SimDevice, host: str, port: int, timeout: float) -> _Session:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(device, reader, writer)

    async def flush(self) -> None:
        data = self.device.take_output()
        if data:
            self.writer.write(data)
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Feed replies to the device until `done()`; False on timeout or when closed."""
        deadline = self.loop.time() + timeout
        while not done():
            left = deadline - self.loop.time()
            if left <= 0 or self.closed_by_peer:
                return False
            try:
                data = await asyncio.wait_for(self.reader.read(4096), left)
            except TimeoutError:
                return done()
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.closed_by_peer = True
                return done()
            self.received += data
            self.device.receive(data, self.loop.time())
            await self.flush()
        return True

    async def answered(self, out: Outbound | None, timeout: float) -> bool:
        if out is None:
            return True
        return await self.wait(lambda: out not in self.device.in_flight, timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def _device(protocol: str, imei: str, sack: bool, timeout: float) -> SimDevice:
    # No periodic traffic and no resends: the check sends each frame itself and waits.
    config = DeviceConfig(position_interval_s=0, heartbeat_interval_s=0,
                          ack_timeout_s=timeout * 100, max_retries=0, sack=sack)
    return SimDevice(protocol, imei, source=RouteSource(Route.generated()), config=config)


async def _speaks(host: str, port: int, protocol: str, timeout: float) -> bool:
    """Does the port answer a login of `protocol`, or its heartbeat where it has no answered
    login? (fresh connection; the gateway answers nothing before a login where one is due)"""
    device = _device(protocol, check_imei(), False, timeout)
    try:
        session = await _Session.open(device, host, port, timeout)
    except (OSError, TimeoutError):
        return False
    try:
        device.connected(session.loop.time())
        await session.flush()
        if device.state is State.LOGIN:
            return await session.wait(lambda: device.state is State.ONLINE, timeout)
        out = device.send_heartbeat(session.loop.time())
        await session.flush()
        return out is not None and await session.answered(out, timeout)
    finally:
        await session.close()


async def run_check(host: str, port: int, protocol: str | None = None, *,
                    imei: str | None = None, sack: bool | None = None, timeout: float = 5.0,
                    sos: bool = True) -> CheckResult:
    """Check a gateway port; `sack=None` detects whether a gl300 port sends SACKs."""
    chosen = protocol or guess_protocol(port) or "gl300"
    imei = imei or check_imei()
    result = CheckResult(host, port, chosen, imei)
    steps = result.steps
    if protocol is None and guess_protocol(port) is None:
        steps.append(Step("protocol", INFO, f"port {port} is no default port ({_default_ports()})"
                          "; trying gl300 (use --protocol to choose)"))
    device = _device(chosen, imei, bool(sack), timeout)
    try:
        session = await _Session.open(device, host, port, timeout)
    except TimeoutError:
        steps.append(Step("connect", FAIL, f"no answer from {host}:{port} within {timeout:g} s",
                          "check the host address and that a firewall lets this port through"))
        return result
    except OSError as exc:
        steps.append(Step("connect", FAIL, f"cannot connect to {host}:{port}: "
                          f"{exc.strerror or exc}",
                          "wrong port, or the gateway is not running; the gateway's device ports"
                          f" default to {_default_ports()} (protocols.<name>.port in its"
                          " configuration)"))
        return result
    steps.append(Step("connect", PASS, f"TCP connection to {host}:{port} open"))
    try:
        await _run_steps(result, session, host, port, timeout, sack, sos)
    finally:
        await session.close()
    return result


async def _mismatch(result: CheckResult, session: _Session, host: str, port: int,
                    timeout: float, what: str) -> None:
    if session.received.startswith(b"HTTP/"):
        result.steps.append(Step(what, FAIL, "the port answered with HTTP: this is the web port",
                                 f"point devices at a device port ({_default_ports()})"))
        return
    others = [name for name in names() if name != result.protocol]
    for other in others:
        if await _speaks(host, port, other, min(timeout, 3.0)):
            result.steps.append(Step(
                what, FAIL, f"no {result.protocol} answer, but the port answers {other}: "
                "protocol mismatch",
                f"configure the devices for {other}, or use the {result.protocol} port "
                f"(default {get_codec(result.protocol).default_port}); "
                f"or run: trackersim check --protocol {other} --host {host} --port {port}"))
            return
    closed = " and closed the connection" if session.closed_by_peer else ""
    result.steps.append(Step(
        what, FAIL, f"no reply within {timeout:g} s{closed}; no supported protocol is answered "
        "on this port",
        "make sure this is the gateway's device port and look at the gateway log for "
        "'frame rejected' (limits, unknown protocol)"))


async def _run_steps(result: CheckResult, session: _Session, host: str, port: int,
                     timeout: float, sack: bool | None, sos: bool) -> None:
    device = session.device
    steps = result.steps
    loop = session.loop
    codec = device.codec
    # 1. Login (a Queclink device has none that is answered without SACK: its heartbeat is).
    device.connected(loop.time())
    await session.flush()
    if device.state is State.LOGIN:
        if not await session.wait(lambda: device.state is State.ONLINE, timeout):
            await _mismatch(result, session, host, port, timeout, "login")
            return
        steps.append(Step("login", PASS, "login acknowledged"))
    else:
        steps.append(Step("login", INFO, f"{codec.name} has no acknowledged login; checking the "
                          "heartbeat instead"))
    # 2. Heartbeat.
    sent_at = len(session.received)
    out = device.send_heartbeat(loop.time())
    frame = out.frame if out is not None else None
    await session.flush()
    if not await session.answered(out, timeout):
        await _mismatch(result, session, host, port, timeout, "heartbeat")
        return
    steps.append(Step("heartbeat", PASS, "heartbeat answered"))
    # SACK: the replies a SACK-enabled gateway adds, as the decoder defines them.
    if codec.name == "gl300" and sack is None:
        await session.wait(lambda: False, 0.3)
        extra = [r.data for r in codec.decode(frame, protocol_options(codec, sack=True)).replies
                 if r not in codec.decode(frame).replies] if frame else []
        sack = any(e in session.received[sent_at:] for e in extra)
        steps.append(Step("sack", INFO, "the gateway sends SACK for every message (positions "
                          "are acknowledged)" if sack else "SACK is off: reports are not "
                          "acknowledged (gateway setting protocols.gl300.sack)"))
        device.config.sack = bool(sack)
        device.options = protocol_options(codec, sack=bool(sack))
    # 3. Position.
    out = device.send_position(loop.time())
    await session.flush()
    if out is None:
        note = ("the BP05 login carried a position and was acknowledged after storing"
                if codec.name == "tk103" and any(s.name == "login" and s.status == PASS
                                                 for s in steps)
                else "sent; verify it on the gateway (devices list / last fix)")
        steps.append(Step("position", INFO, f"{codec.name} positions have no acknowledgement "
                          f"in the protocol: {note}"))
    elif await session.answered(out, timeout):
        steps.append(Step("position", PASS, "position acknowledged (stored by the gateway)"))
    else:
        fix = ("set protocols.gl300.sack = true in the gateway, or run the check without --sack"
               if codec.name == "gl300" else
               "the gateway received the position but did not confirm storing it: "
               "check its database (gateway log 'database write failed')")
        steps.append(Step("position", FAIL, f"no acknowledgement within {timeout:g} s", fix))
        return
    # 4. SOS.
    if not sos:
        return
    before = device.stats.frames_sent
    device.press_sos(loop.time())
    await session.flush()
    sos_out = next((o for o in device.in_flight if o.kind.value == "sos"), None)
    if device.stats.frames_sent == before:
        steps.append(Step("sos", FAIL, "the device could not send SOS"))
    elif sos_out is None:
        steps.append(Step("sos", INFO, f"SOS sent; {codec.name} defines no SOS acknowledgement "
                          "here: confirm the alarm on the gateway"))
    elif await session.answered(sos_out, timeout):
        steps.append(Step("sos", PASS, "SOS acknowledged (alarm stored by the gateway)"))
    else:
        steps.append(Step("sos", FAIL, f"SOS not acknowledged within {timeout:g} s",
                          "the gateway did not confirm storing the alarm: check its database "
                          "and log"))

