"""JT/T 808 byte stuffing and framing cost per byte, by frame size: linear means flat columns.

    python bench/jt808_stuffing.py [--repeat 5]

For bodies of 64 to 1023 bytes (the largest one frame holds), with no byte stuffed and with
every byte stuffed (a body of 0x7E: the worst case, the frame twice as long on the wire), it
times un-stuffing alone and the whole decode of the frame (a 0x0900 message of an unknown type,
kept as hex), and the framer on hostile streams (runs of tiny text frames, lone delimiters) of
64 KiB to 1 MiB fed at once. The figures are nanoseconds per wire byte, best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.codec import utc_now
from protocols.jt808 import Jt808Framer, Jt808Options, Jt808Session, unescape
from protocols.jt808.wire import build

PHONE = bytes.fromhex("013912345678")


def best_ns_per_byte(fn: Callable[[], object], size: int, repeat: int, loops: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best / size * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    session = Jt808Session(Jt808Options(), utc_now)
    print(f"{'body bytes':>10} {'stuffed':>8} {'wire bytes':>10} {'unescape ns/B':>14} "
          f"{'decode ns/B':>12}")
    for size in (64, 128, 256, 512, 1023):
        for stuffed in (False, True):
            body = b"\x99" + (b"\x7e" if stuffed else b"\x55") * (size - 1)
            frame = build(0x0900, PHONE, 1, body)
            inner = frame[1:-1]
            loops = max(20, 200_000 // len(frame))
            unstuff = best_ns_per_byte(lambda i=inner: unescape(i), len(frame), args.repeat,
                                       loops)
            decode = best_ns_per_byte(lambda f=frame: session.decode(f), len(frame),
                                      args.repeat, loops)
            print(f"{size:>10} {'yes' if stuffed else 'no':>8} {len(frame):>10} "
                  f"{unstuff:>14.2f} {decode:>12.2f}")
    print()
    print(f"{'stream':>12} {'bytes':>9} {'framer ns/B':>12}")
    for name, unit in (("'()' text", b"()"), ("'(~' text", b"(~"), ("7E 7E", b"\x7e\x7e"),
                       ("'(' open", b"("), ("7D only", b"\x7d")):
        for total in (64 * 1024, 1024 * 1024):
            data = unit * (total // len(unit))
            ns = best_ns_per_byte(lambda d=data: Jt808Framer().feed(d), len(data),
                                  args.repeat, 1)
            print(f"{name:>12} {len(data):>9} {ns:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
