"""`trackersim` (also `python -m simulators`): simulated trackers for tests, benchmarks, installers.

    trackersim device --protocol gl300 --host 127.0.0.1 --port 5004 --sos-after 30s
    trackersim device --protocol gl300 --transport mqtt --mqtt-url mqtt://127.0.0.1:1883
    trackersim fleet  --protocol gl300 --devices 5000 --rate 1/s --duration 60s
    trackersim check  --host gateway.example --port 5004
    trackersim serial --port /dev/ttyUSB0 --mode out --route berlin-grid.gpx
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from protocols import AlarmType, get_codec, names
from simulators.alarms import UnsupportedAlarm, supported_alarms
from simulators.check import run_check
from simulators.device import DeviceConfig, DeviceStats, SimDevice
from simulators.fleet import FleetConfig, FleetProgress, run_fleet
from simulators.identity import check_imei, random_imei
from simulators.links import DeviceLink, TcpLink
from simulators.mqtt_link import MqttLink, parse_mqtt_url
from simulators.routes import FixSource, LiveSource, Route, RouteError, RouteSource, load_route
from simulators.scheduler import Scheduler
from simulators.units import parse_duration, parse_rate


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _imei(text: str) -> str:
    try:
        return check_imei(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _alarm(text: str) -> AlarmType:
    try:
        return AlarmType(text.lower().replace("-", "_"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown alarm {text!r}; e.g. " + ", ".join(a.value for a in AlarmType)) from None


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (it is a dependency off Windows), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _route(path: str | None) -> Route:
    if path is None:
        return Route.generated()
    return load_route(path)


def _show(data: bytes, binary: bool = False) -> str:
    if binary:  # binary protocols (gt06) read best as hex
        return data.hex(" ")
    text = data.decode("latin-1")
    return "".join(c if " " <= c <= "~" else repr(c)[1:-1] for c in text)


def _sentences(data: bytes) -> str:
    """NMEA sentences one per line, as a terminal shows a receiver's output: each ends with
    CR LF on the serial line, which is the line break here (not the escape text `\\r\\n`)."""
    return "\n".join(_show(line) for line in data.split(b"\r\n") if line)


class Printer:
    """Prints what a device does: each frame sent (->), each reply received (<-), events."""

    def __init__(self, out: Any = None, *, binary: bool = False) -> None:
        self.out = out or sys.stdout
        self.binary = binary

    def __call__(self, event: str, detail: str, data: bytes | None) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        shown = _show(data or b"", self.binary)
        if event in ("send", "resend"):
            line = f"{stamp} -> {shown}   [{detail}]"
        elif event == "recv":
            line = f"{stamp} <- {shown}   [{detail}]"
        elif event == "command":
            line = f"{stamp} <- {shown}   [command: {detail}]"
        else:
            line = f"{stamp} .. {event}: {detail}" + (f" {shown}" if data else "")
        print(line, file=self.out, flush=True)


def _device_config(args: argparse.Namespace) -> DeviceConfig:
    return DeviceConfig(position_interval_s=args.interval, heartbeat_interval_s=args.heartbeat,
                        ack_timeout_s=args.ack_timeout, max_retries=args.retries,
                        sack=args.sack, send_info=True)


def render_stats(stats: DeviceStats, protocol: str) -> str:
    lat = sorted(stats.ack_latencies)
    p50 = f"{lat[len(lat) // 2] * 1000:.1f} ms" if lat else "-"
    return (f"frames sent {stats.frames_sent}, acknowledged {stats.frames_acked} of "
            f"{stats.frames_expecting_ack} that have an ack in {protocol} "
            f"({stats.frames_no_ack} have none by design), retransmitted {stats.retransmits}, "
            f"buffered fixes {stats.fixes_buffered} (replayed {stats.fixes_replayed}), "
            f"commands answered {stats.commands_answered}, reconnects "
            f"{max(0, stats.connects - 1)}, ack p50 {p50}")


async def cmd_device(args: argparse.Namespace) -> int:
    protocol = args.protocol
    imei = args.imei or random_imei()
    port = args.port or get_codec(protocol).default_port
    printer = Printer(binary=get_codec(protocol).binary)
    source: FixSource
    nmea = None
    if args.nmea_in:
        from simulators.serial_link import NmeaInput

        live = LiveSource()
        nmea = NmeaInput(args.nmea_in, args.baud, live)
        nmea.open()
        source = live
        print(f"positions from the GPS receiver on {args.nmea_in}", flush=True)
    else:
        route = _route(args.route)
        source = RouteSource(route)
        print(f"route: {route}", flush=True)
    device = SimDevice(protocol, imei, source=source, config=_device_config(args), trace=printer)
    scheduler = Scheduler()
    link: DeviceLink
    if args.serial:
        from simulators.serial_link import SerialLink

        link = SerialLink(device, args.serial, scheduler, baud=args.baud)
        where = f"serial {args.serial}"
    elif args.transport == "mqtt":
        try:
            parse_mqtt_url(args.mqtt_url)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        link = MqttLink(device, scheduler, url=args.mqtt_url, topic_prefix=args.topic_prefix)
        where = f"{args.mqtt_url} ({link.up_topic} / {link.down_topic})"
    else:
        link = TcpLink(device, args.host, port, scheduler)
        where = f"{args.host}:{port}"
    print(f"{protocol} device {imei} -> {where} (Ctrl-C to stop; type 's' + Enter for SOS)",
          flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, done.set)
    _stdin_commands(loop, device, link, done)
    link.start()
    timers = []
    if args.sos_after is not None:
        timers.append(loop.call_later(args.sos_after, device.press_sos))
    if args.alarm is not None:
        timers.append(loop.call_later(args.alarm_after, _raise, device, args.alarm))
    try:
        if args.duration:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.duration)
        else:
            await done.wait()
    finally:
        for timer in timers:
            timer.cancel()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(sys.stdin.fileno())
        device.quiesce()
        if isinstance(link, TcpLink):
            await link.finish(timeout=min(5.0, args.ack_timeout))
        elif isinstance(link, MqttLink):
            await link.finish(timeout=min(5.0, args.ack_timeout))
            await link.wait_closed()
        else:
            link.stop()
        if nmea is not None:
            nmea.close()
        scheduler.close()
    print(render_stats(device.stats, protocol), flush=True)
    return 0


def _raise(device: SimDevice, alarm: AlarmType) -> None:
    try:
        device.raise_alarm(alarm)
    except (UnsupportedAlarm, RuntimeError) as exc:
        print(f".. alarm not sent: {exc}", flush=True)


def _stdin_commands(loop: asyncio.AbstractEventLoop, device: SimDevice, link: DeviceLink,
                    done: asyncio.Event) -> None:
    """Keys on standard input: s = SOS, a NAME = alarm, d = drop the link, q = quit."""
    if not sys.stdin or not sys.stdin.isatty():
        return

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        word, _, rest = line.strip().partition(" ")
        if word in ("s", "sos"):
            _raise(device, AlarmType.SOS)
        elif word in ("a", "alarm") and rest:
            try:
                _raise(device, _alarm(rest))
            except argparse.ArgumentTypeError as exc:
                print(f".. {exc}", flush=True)
        elif word in ("d", "drop"):
            link.drop()
        elif word in ("q", "quit"):
            done.set()
        else:
            print(".. keys: s = SOS, a NAME = alarm, d = drop the link, q = quit", flush=True)

    with contextlib.suppress(ValueError, OSError, NotImplementedError):
        loop.add_reader(sys.stdin.fileno(), readable)


async def cmd_fleet(args: argparse.Namespace) -> int:
    config = FleetConfig(
        protocol=args.protocol, host=args.host, port=args.port, devices=args.devices,
        rate_per_s=args.rate, duration_s=args.duration, sack=args.sack,
        heartbeat_interval_s=args.heartbeat, ack_timeout_s=args.ack_timeout,
        connect_rate=args.connect_rate, first_index=args.first_index,
        route=_route(args.route) if args.route else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if args.no_progress or (not sys.stdout.isatty() and not args.progress):
        summary = await run_fleet(config, stop=stop)
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.fields[line]}"), TimeRemainingColumn(),
                      refresh_per_second=4) as bar:
            task = bar.add_task("fleet", total=config.duration_s, line="connecting")
            last = [0.0, 0]

            def progress(p: FleetProgress) -> None:
                s = p.stats
                rate = (s.frames_sent - last[1]) / max(1e-6, p.elapsed_s - last[0])
                last[0], last[1] = p.elapsed_s, s.frames_sent
                bar.update(task, completed=min(p.elapsed_s, p.duration_s), line=(
                    f"online {p.online}/{p.devices}  sent {s.frames_sent}  "
                    f"acked {s.frames_acked}  resent {s.retransmits}  {rate:,.0f}/s"))

            summary = await run_fleet(config, progress=progress, stop=stop)
    print(summary.render(), flush=True)
    return 0 if summary.online_at_end == config.devices else 1


async def cmd_check(args: argparse.Namespace) -> int:
    result = await run_check(args.host, args.port, args.protocol, imei=args.imei,
                             sack=args.sack, timeout=args.timeout, sos=not args.no_sos)
    print(result.render(), flush=True)
    return 0 if result.ok else 1


async def cmd_serial(args: argparse.Namespace) -> int:
    from simulators.serial_link import NmeaInput, NmeaOutput

    if args.mode == "out":
        route = _route(args.route)
        output = NmeaOutput(args.port, RouteSource(route), args.baud, interval_s=args.interval)
        output.on_fix = lambda _fix, data: print(_sentences(data), flush=True)
        print(f"writing NMEA for {route} to {args.port} every {args.interval:g} s", flush=True)
        task = asyncio.ensure_future(output.run(args.duration, args.count))
        await _until_signal(task)
        print(f"{output.sent} fixes written", flush=True)
        return 0
    live = LiveSource()
    live.listeners.append(lambda fix: print(
        f"{fix.fix_time:%H:%M:%S} {fix.lat:.6f},{fix.lon:.6f} {fix.speed_kmh:.1f} km/h "
        f"{'valid' if fix.valid else 'no fix'}", flush=True))
    nmea = NmeaInput(args.port, args.baud, live)
    nmea.open()
    link: TcpLink | None = None
    scheduler = Scheduler()
    if args.forward:
        host, _, port = args.forward.rpartition(":")
        device = SimDevice(args.protocol, args.imei or random_imei(), source=live,
                           config=_device_config(args),
                           trace=Printer(binary=get_codec(args.protocol).binary))
        link = TcpLink(device, host or "127.0.0.1", int(port), scheduler)
        link.start()
    print(f"reading NMEA from {args.port} at {args.baud} baud"
          + (f", reporting as {args.protocol} to {args.forward}" if args.forward else ""),
          flush=True)
    task = asyncio.ensure_future(asyncio.sleep(args.duration if args.duration else 1e9))
    await _until_signal(task)
    if link is not None:
        link.stop()
    nmea.close()
    scheduler.close()
    print(f"{nmea.sentences} sentences, {live.received} fixes, {nmea.reader.errors} bad"
          + (f"; port error: {nmea.error}" if nmea.error else ""), flush=True)
    return 0


async def _until_signal(task: asyncio.Future[Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackersim", description="Simulated GPS trackers (every protocol of the "
        "gateway) for tests, benchmarks and installers.")
    sub = parser.add_subparsers(dest="command", required=True)

    def behaviour(p: argparse.ArgumentParser, interval: str = "10s") -> None:
        p.add_argument("--protocol", choices=names(), default="gl300")
        p.add_argument("--interval", type=_duration, default=_duration(interval),
                       help=f"seconds between positions (default {interval})")
        p.add_argument("--heartbeat", type=_duration, default=60.0,
                       help="seconds between heartbeats, 0 for none (default 60s)")
        p.add_argument("--ack-timeout", type=_duration, default=10.0,
                       help="wait this long for an ack before resending (default 10s)")
        p.add_argument("--retries", type=int, default=3,
                       help="resends before the link is declared dead (default 3)")
        p.add_argument("--sack", action="store_true",
                       help="gl300: the gateway SACKs every message (protocols.gl300.sack = true); "
                       "reports are then resent and buffered until acknowledged")

    device = sub.add_parser("device", help="one device, printing every frame and reply")
    behaviour(device)
    device.add_argument("--imei", type=_imei, help="15 digits (14 to have the Luhn digit "
                        "added); random when not given")
    device.add_argument("--host", default="127.0.0.1")
    device.add_argument("--port", type=int, help="default: the protocol's default port")
    device.add_argument("--route", help="NMEA log or GPX file (or a name in config/routes); "
                        "default: a generated street-grid drive")
    device.add_argument("--nmea-in", metavar="SERIAL", help="take positions live from a GPS "
                        "receiver on this serial port instead of a route")
    device.add_argument("--serial", metavar="SERIAL", help="send the protocol over this serial "
                        "port instead of TCP")
    device.add_argument("--baud", type=int, default=9600)
    device.add_argument("--transport", choices=("tcp", "mqtt"), default="tcp",
                        help="tcp: to --host/--port; mqtt: through the broker at --mqtt-url "
                        "(default tcp)")
    device.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883",
                        help="broker for --transport mqtt: mqtt[s]://[user:pass@]host[:port] "
                        "(default mqtt://127.0.0.1:1883)")
    device.add_argument("--topic-prefix", default="trackers",
                        help="publish on <prefix>/<imei>/up, receive on <prefix>/<imei>/down "
                        "(default trackers)")
    device.add_argument("--sos-after", type=_duration, help="press SOS after this long")
    device.add_argument("--alarm", type=_alarm, help="raise this alarm (e.g. overspeed)")
    device.add_argument("--alarm-after", type=_duration, default=10.0)
    device.add_argument("--duration", type=_duration, help="stop after this long")

    fleet = sub.add_parser("fleet", help="many devices; live progress and a closing summary")
    behaviour(fleet, "1s")
    fleet.add_argument("--host", default="127.0.0.1")
    fleet.add_argument("--port", type=int)
    fleet.add_argument("--devices", type=int, default=100)
    fleet.add_argument("--rate", type=_rate, default=1.0,
                       help="positions per device: 1/s, 2/s, 1/10s (default 1/s)")
    fleet.add_argument("--duration", type=_duration, default=60.0)
    fleet.add_argument("--connect-rate", type=float, default=2000.0,
                       help="new connections per second at start (default 2000)")
    fleet.add_argument("--first-index", type=int, default=0,
                       help="device number of the first device (IMEIs are stable per number)")
    fleet.add_argument("--route")
    fleet.add_argument("--no-progress", action="store_true")
    fleet.add_argument("--progress", action="store_true", help="progress bar even when not a "
                       "terminal")

    check = sub.add_parser("check", help="installer check of a gateway port: pass or fail")
    check.add_argument("--host", default="127.0.0.1")
    check.add_argument("--port", type=int, required=True)
    check.add_argument("--protocol", choices=names(),
                       help="default: from the port number (default ports), else gl300")
    check.add_argument("--imei", type=_imei)
    check.add_argument("--sack", action=argparse.BooleanOptionalAction, default=None,
                       help="gl300: expect SACKs (default: detect)")
    check.add_argument("--timeout", type=_duration, default=5.0)
    check.add_argument("--no-sos", action="store_true", help="do not press SOS")

    ser = sub.add_parser("serial", help="NMEA on a serial port: read a GPS receiver (in) or "
                         "act as one (out)")
    ser.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM3")
    ser.add_argument("--baud", type=int, default=9600)
    ser.add_argument("--mode", choices=("in", "out"), default="out")
    ser.add_argument("--route", help="out: route to play (default: generated)")
    ser.add_argument("--interval", type=_duration, default=1.0, help="out: seconds between "
                     "fixes; in, with --forward: between reports")
    ser.add_argument("--count", type=int, help="out: stop after this many fixes")
    ser.add_argument("--duration", type=_duration)
    ser.add_argument("--forward", metavar="HOST:PORT", help="in: report the receiver's "
                     "positions to a gateway as a simulated device")
    ser.add_argument("--protocol", choices=names(), default="gl300")
    ser.add_argument("--imei", type=_imei)
    ser.add_argument("--heartbeat", type=_duration, default=60.0)
    ser.add_argument("--ack-timeout", type=_duration, default=10.0)
    ser.add_argument("--retries", type=int, default=3)
    ser.add_argument("--sack", action="store_true")

    sub.add_parser("alarms", help="the alarms each protocol's simulated device can raise")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"device": cmd_device, "fleet": cmd_fleet, "check": cmd_check,
                "serial": cmd_serial}
    if args.command == "alarms":
        for name in names():
            print(f"{name}: " + ", ".join(a.value for a in supported_alarms(get_codec(name))))
        return 0
    try:
        return run(commands[args.command](args))
    except (RouteError, OSError, RuntimeError) as exc:
        print(f"trackersim: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
