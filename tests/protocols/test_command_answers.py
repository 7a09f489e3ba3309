"""How each protocol tells which command a device's answer belongs to (`Codec.answers`).

The answers are the simulated devices' own (built from the same protocol code the gateway
decodes with), decoded in a server session after the device's login, as the gateway does.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocols import Answer, Command, CommandResult, CommandType, Fix, get_codec, names
from protocols.codec import Codec, ProtocolSession
from protocols.events import Event
from protocols.imei import complete_imei
from protocols.jt808.commands import build_command

FIX = Fix(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 48.85, 2.35)
IMEI = complete_imei("35958601234567")


def _command(kind: CommandType) -> Command:
    return Command(kind, interval_s=60 if kind is CommandType.REPORT_INTERVAL else None)


def _answer_results(codec: Codec, session: ProtocolSession, sent: bytes
                    ) -> list[CommandResult]:
    """The CommandResults `session` decodes from the simulated device's answer to `sent`."""
    device = codec.device(IMEI)
    answer = device.command_answer(sent, FIX)
    if answer is None:
        return []
    events: list[Event] = []
    for frame in codec.framer(4096).feed(answer):
        assert isinstance(frame, bytes)
        events.extend(session.decode(frame).events)
    return [e for e in events if isinstance(e, CommandResult)]


def _logged_in(codec: Codec) -> ProtocolSession:
    """A server session that has seen the device's login (a JT/T 808 command is addressed by
    the phone bytes of the device's open session, as in the gateway)."""
    session = codec.new_session()
    session.decode(codec.device(IMEI).login())
    return session


def _device_id(codec: Codec) -> str:
    device = codec.device(IMEI)
    return str(getattr(device, "device_id", device.imei))


#: Protocols whose devices answer every command they support with a CommandResult.
ANSWER_EVERYTHING = {"gl300", "h02", "jt808", "gt06", "eelink", "watch"}


@pytest.mark.parametrize("protocol", names())
def test_every_answer_of_the_simulated_device_matches_its_own_command(protocol: str) -> None:
    codec = get_codec(protocol)
    session = _logged_in(codec)
    for kind in sorted(codec.commands, key=lambda k: k.value):
        sent = codec.encode_command(_device_id(codec), _command(kind))
        results = _answer_results(codec, session, sent)
        if protocol in ANSWER_EVERYTHING:
            assert results, (protocol, kind)
        for result in results:
            assert codec.answers(sent, result) is Answer.DONE, (protocol, kind, result)


def test_gps103_answers_nothing_a_position_request_included() -> None:
    codec = get_codec("gps103")
    session = _logged_in(codec)
    sent = codec.encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    assert _answer_results(codec, session, sent) == []  # an ordinary report, naming no command
    assert codec.answers(sent, CommandResult(IMEI, "B", "x")) is None


def test_tk103_matches_only_the_position_request() -> None:
    codec = get_codec("tk103")
    session = _logged_in(codec)
    device_id = _device_id(codec)
    request = codec.encode_command(device_id, Command(CommandType.POSITION_SINGLE))
    [bp04] = _answer_results(codec, session, request)
    assert codec.answers(request, bp04) is Answer.DONE
    reboot = codec.encode_command(device_id, Command(CommandType.REBOOT))
    assert codec.answers(reboot, bp04) is None
    zc03 = CommandResult(device_id, "", "free text")
    assert codec.answers(request, zc03) is None


def test_gl300_tells_commands_and_rto_sub_commands_apart() -> None:
    codec = get_codec("gl300")
    session = _logged_in(codec)
    position = codec.encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    reboot = codec.encode_command(IMEI, Command(CommandType.REBOOT))
    stop = codec.encode_command(IMEI, Command(CommandType.ENGINE_STOP))
    [rtl] = _answer_results(codec, session, position)
    assert rtl.command == "RTO" and rtl.attributes["sub_command"] == "RTL"
    assert codec.answers(position, rtl) is Answer.DONE
    assert codec.answers(reboot, rtl) is None  # AT+GTRTO sub-command 3 is REBOOT
    assert codec.answers(stop, rtl) is None  # AT+GTOUT


def test_h02_matches_by_name_and_the_echoed_time() -> None:
    from protocols.h02 import encode_command_at

    codec = get_codec("h02")
    session = _logged_in(codec)
    device_id = _device_id(codec)
    first = encode_command_at(device_id, Command(CommandType.ENGINE_STOP),
                              datetime(2026, 1, 2, 10, 0, 0, tzinfo=UTC))
    second = encode_command_at(device_id, Command(CommandType.ENGINE_STOP),
                               datetime(2026, 1, 2, 10, 0, 7, tzinfo=UTC))
    [answer] = _answer_results(codec, session, second)
    assert answer.result.startswith("S20,OK,100007")
    assert codec.answers(second, answer) is Answer.DONE
    assert codec.answers(first, answer) is None
    interval = encode_command_at(device_id, Command(CommandType.REPORT_INTERVAL, interval_s=30),
                                 datetime(2026, 1, 2, 10, 0, 7, tzinfo=UTC))
    assert codec.answers(interval, answer) is None  # S71, not S20


def test_jt808_matches_the_serial_and_a_failure_code_is_a_refusal() -> None:
    codec = get_codec("jt808")
    device_id = _device_id(codec)
    session = _logged_in(codec)
    stop = build_command(device_id, Command(CommandType.ENGINE_STOP), 41)
    other = build_command(device_id, Command(CommandType.ENGINE_STOP), 42)
    [done] = _answer_results(codec, session, stop)
    assert done.attributes["serial"] == 41 and done.result == "success"
    assert codec.answers(stop, done) is Answer.DONE
    assert codec.answers(other, done) is None
    refused = CommandResult(device_id, "0x8105", "not supported", attributes={"serial": 41})
    assert codec.answers(stop, refused) is Answer.REFUSED
    wrong_kind = CommandResult(device_id, "0x8103", "success", attributes={"serial": 41})
    assert codec.answers(stop, wrong_kind) is None


def test_gt06_position_answer_names_the_request_and_text_answers_name_nothing() -> None:
    codec = get_codec("gt06")
    session = _logged_in(codec)
    where = codec.encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    stop = codec.encode_command(IMEI, Command(CommandType.ENGINE_STOP))
    [fix_answer] = _answer_results(codec, session, where)
    assert fix_answer.command == "WHERE#"
    assert codec.answers(where, fix_answer) is Answer.DONE
    assert codec.answers(stop, fix_answer) is None
    [text] = _answer_results(codec, session, stop)
    assert text.command == "" and codec.answers(stop, text) is Answer.DONE


def test_watch_matches_the_echoed_name() -> None:
    codec = get_codec("watch")
    session = _logged_in(codec)
    device_id = _device_id(codec)
    request = codec.encode_command(device_id, Command(CommandType.POSITION_SINGLE))
    reboot = codec.encode_command(device_id, Command(CommandType.REBOOT))
    [echo] = _answer_results(codec, session, request)
    assert codec.answers(request, echo) is Answer.DONE
    assert codec.answers(reboot, echo) is None
