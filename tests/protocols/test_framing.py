"""The shared framing rules, on a minimal `<...>` framer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.framing import BoundedFramer, Discarded


class AngleFramer(BoundedFramer):
    __slots__ = ()

    def _find_start(self, buf: bytes, pos: int) -> int:
        return buf.find(b"<", pos)

    def _find_end(self, buf: bytes, start: int) -> int:
        end = buf.find(b">", start)
        return -1 if end < 0 else end + 1


def frames_of(out: list[bytes | Discarded]) -> list[bytes]:
    return [item for item in out if isinstance(item, bytes)]


def test_garbage_merged_and_split_frames() -> None:
    framer = AngleFramer(64)
    out = framer.feed(b"junk<a><b")
    assert out == [Discarded("bytes outside a frame", 4), b"<a>"]
    assert framer.feed(b"b>\r\n<c") == [b"<bb>"]
    assert framer.feed(b">") == [b"<c>"]
    assert framer.buffered == 0


def test_over_long_frame_is_dropped_and_stream_recovers() -> None:
    framer = AngleFramer(64)
    out = framer.feed(b"<" + b"x" * 200)
    assert out and all(isinstance(item, Discarded) for item in out)
    assert "longer than 64" in out[0].reason  # type: ignore[union-attr]
    assert sum(item.size for item in out) == 201 - framer.buffered  # type: ignore[union-attr]
    assert framer.buffered <= 64
    assert frames_of(framer.feed(b"><ok>")) == [b"<ok>"]


def test_over_long_complete_frame_is_dropped() -> None:
    framer = AngleFramer(64)
    out = framer.feed(b"<" + b"y" * 100 + b"><z>")
    assert isinstance(out[0], Discarded)
    assert out[1:] == [b"<z>"]


class CountingFramer(AngleFramer):
    __slots__ = ("end_searches",)

    def __init__(self, max_frame_bytes: int) -> None:
        super().__init__(max_frame_bytes)
        self.end_searches = 0

    def _find_end(self, buf: bytes, start: int) -> int:
        self.end_searches += 1
        return super()._find_end(buf, start)


def test_hostile_start_markers_cost_a_bounded_number_of_searches() -> None:
    # 2 MiB of frame starts and no end. Retrying at every "<" would search for an end once per
    # byte (quadratic work); the framer must give up on the whole over-long run at once.
    framer = CountingFramer(4096)
    chunk = b"<" * 65536
    for _ in range(32):
        framer.feed(chunk)
        assert framer.buffered <= 4096
    assert framer.end_searches <= 32 * 2


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=80), max_size=20), st.integers(min_value=16, max_value=128))
def test_any_input_keeps_buffer_bounded(pieces: list[bytes], bound: int) -> None:
    framer = AngleFramer(bound)
    for piece in pieces:
        for item in framer.feed(piece):
            if isinstance(item, bytes):
                assert len(item) <= bound
        assert framer.buffered <= bound
