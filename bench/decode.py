"""Frames decoded per second per protocol on one core, next to a no-parsing baseline.

    python bench/decode.py [--frames 50000] [--repeat 3]

For each protocol the same byte stream of single-fix position frames (made by the device-side
encoder, each fix different) is processed twice, in 4 KiB chunks as a socket would deliver it:

- baseline: for text protocols with a one-byte terminator, a Python loop that only splits the
  stream into frames at the terminator (bytes.find and a slice per frame), no parsing; for the
  others (binary, length-framed), the protocol's own framer alone, without decoding;
- fields: the terminator loop that also splits each frame into text fields (the least any text
  parser must do), shown to place the codec between "no parsing" and "minimal parsing" ("-"
  for protocols without a terminator);
- codec: the protocol's framer plus its session's decode() of every frame into typed events.

Every registered protocol gets a row (`protocols.names()`).

The figure is the best of --repeat runs. Each target is judged on its own: >= 100,000 frames/s
per protocol on one core (the floor the protocol issues set), and the codec within 5x of the
baseline (a stretch goal no text codec meets yet: the baseline does no parsing at all). The exit
status is 0 when every protocol meets the frames/s floor.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols import Fix, Position, get_codec, names
from protocols.framing import DEFAULT_MAX_FRAME_BYTES
from protocols.imei import complete_imei

CHUNK = 4096
TERMINATOR = {"gps103": b";", "tk103": b")", "gl300": b"$"}
TARGET_FPS = 100_000
TARGET_RATIO = 5.0


def make_stream(protocol: str, frames: int, seed: int = 7) -> tuple[bytes, bytes]:
    """The device's login frame, and `frames` position frames."""
    rng = random.Random(seed)
    device = get_codec(protocol).device(complete_imei("35958601582980"))
    login = device.login()
    start = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    parts = []
    for i in range(frames):
        fix = Fix(
            fix_time=start + timedelta(seconds=i),
            lat=rng.uniform(-80, 80),
            lon=rng.uniform(-179, 179),
            speed_kmh=round(rng.uniform(0, 130), 1),
            course_deg=round(rng.uniform(0, 359), 1),
            altitude_m=round(rng.uniform(0, 900), 1),
        )
        parts.append(device.position(fix))
    return login, b"".join(parts)


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def run_baseline(pieces: list[bytes], terminator: bytes) -> int:
    count = 0
    buf = b""
    for piece in pieces:
        buf += piece
        pos = 0
        while True:
            end = buf.find(terminator, pos)
            if end < 0:
                break
            _frame = buf[pos : end + 1]
            count += 1
            pos = end + 1
        buf = buf[pos:]
    return count


def run_fields(pieces: list[bytes], terminator: bytes) -> int:
    count = 0
    buf = b""
    for piece in pieces:
        buf += piece
        pos = 0
        while True:
            end = buf.find(terminator, pos)
            if end < 0:
                break
            _fields = buf[pos : end + 1].decode("ascii").split(",")
            count += 1
            pos = end + 1
        buf = buf[pos:]
    return count


def run_framer(pieces: list[bytes], protocol: str) -> int:
    framer = get_codec(protocol).framer(DEFAULT_MAX_FRAME_BYTES)
    count = 0
    for piece in pieces:
        for frame in framer.feed(piece):
            if isinstance(frame, bytes):
                count += 1
    return count


def run_codec(pieces: list[bytes], protocol: str, login: bytes) -> int:
    codec = get_codec(protocol)
    framer = codec.framer(DEFAULT_MAX_FRAME_BYTES)
    decode = codec.new_session().decode
    decode(login)  # protocols whose frames carry no identity need the login first
    count = 0
    for piece in pieces:
        for frame in framer.feed(piece):
            if isinstance(frame, bytes):
                decoded = decode(frame)
                if any(isinstance(event, Position) for event in decoded.events):
                    count += 1
    return count


def best_rate(fn: Callable[[], int], repeat: int, expected: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = fn()
        elapsed = time.perf_counter() - t0
        if got != expected:
            raise SystemExit(f"processed {got} frames, expected {expected}: benchmark invalid")
        best = min(best, elapsed)
    return expected / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"{'protocol':<9} {'baseline fr/s':>14} {'fields fr/s':>12} {'codec fr/s':>12} "
          f"{'ratio':>7}  >= {TARGET_FPS:,} fr/s   ratio <= {TARGET_RATIO:g}x "
          "(ratio = baseline / codec)")
    ok = True
    for protocol in names():
        login, stream = make_stream(protocol, args.frames)
        pieces = chunks(stream)
        terminator = TERMINATOR.get(protocol)
        if terminator is not None:
            baseline = best_rate(
                lambda p=pieces, t=terminator: run_baseline(p, t), args.repeat, args.frames)
            rate = best_rate(
                lambda p=pieces, t=terminator: run_fields(p, t), args.repeat, args.frames)
            fields = f"{rate:,.0f}"
        else:
            baseline = best_rate(
                lambda p=pieces, n=protocol: run_framer(p, n), args.repeat, args.frames)
            fields = "-"
        codec = best_rate(
            lambda p=pieces, n=protocol, g=login: run_codec(p, n, g), args.repeat, args.frames)
        ratio = baseline / codec
        fast = codec >= TARGET_FPS
        ok &= fast
        print(f"{protocol:<9} {baseline:>14,.0f} {fields:>12} {codec:>12,.0f} "
              f"{ratio:>6.1f}x  {'ok' if fast else 'MISSED':<16} "
              f"{'ok' if ratio <= TARGET_RATIO else 'missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
