from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from gateway.config import ConfigError, Settings, load_settings, protocol_tables
from protocols import codecs

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "gateway.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)


def test_shipped_file_documents_exactly_the_defaults() -> None:
    assert load_settings(SHIPPED) == Settings()


def test_defaults_bind_loopback_and_traccar_ports() -> None:
    settings = load_settings()
    assert settings.tcp.host == "127.0.0.1"
    assert settings.http.host == "127.0.0.1"
    ports = {name: protocol.port for name, protocol in settings.protocols.items()}
    assert (ports["gps103"], ports["tk103"], ports["gl300"]) == (5001, 5002, 5004)
    assert ports == {codec.name: codec.default_port for codec in codecs()}
    assert settings.database.url.startswith("sqlite+aiosqlite:///")


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[tcp]\nhost = "127.0.0.2"\n[protocols.gl300]\nport = 6004\n')
    monkeypatch.setenv("GATEWAY_PROTOCOLS__GL300__PORT", "15004")
    monkeypatch.setenv("GATEWAY_ADMIN__TOKEN", "s3cret-s3cret-s3cret-s3cret-s3cret")
    settings = load_settings(path)
    assert settings.protocols["gl300"].port == 15004
    assert settings.tcp.host == "127.0.0.2"
    assert settings.admin.token == "s3cret-s3cret-s3cret-s3cret-s3cret"


def test_wrong_value_names_key_and_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PROTOCOLS__GL300__PORT", "70000")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "protocols.gl300.port" in message
    assert "65535" in message
    assert "GATEWAY_PROTOCOLS__GL300__PORT" in message


def test_protocol_option_from_environment_and_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[protocols.gl300]\nsack = true\n")
    assert load_settings(path).protocols["gl300"].options.sack is True
    monkeypatch.setenv("GATEWAY_PROTOCOLS__GL300__SACK", "false")
    assert load_settings(path).protocols["gl300"].options.sack is False


def test_wrong_protocol_option_names_key_and_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_PROTOCOLS__GL300__SACK", "maybe")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "protocols.gl300.sack: Input should be a valid boolean" in str(info.value)
    assert "GATEWAY_PROTOCOLS__GL300__SACK" in str(info.value)


def test_unknown_protocol_and_unknown_option_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[protocols.gl301]\nport = 1\n[protocols.gl300]\nsak = true\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "protocols.gl301: no such protocol (known: " in message
    assert "protocols.gl300.sak: no such key (allowed: port, sack)" in message


def test_old_keys_still_work_with_a_deprecation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[tcp]\ngl300_port = 6004\ngl300_sack = true\n"
                    "[protocols.tk103]\nport = 7002\n")
    monkeypatch.setenv("GATEWAY_TCP__TK103_PORT", "15002")
    settings = load_settings(path)
    assert settings.protocols["gl300"].port == 6004
    assert settings.protocols["gl300"].options.sack is True
    # Where the new key is given too, it wins over the old one.
    assert settings.protocols["tk103"].port == 7002
    assert sorted(settings.deprecations) == [
        "tcp.gl300_port (GATEWAY_TCP__GL300_PORT) is deprecated and will be removed in the next "
        "release: use protocols.gl300.port (GATEWAY_PROTOCOLS__GL300__PORT)",
        "tcp.gl300_sack (GATEWAY_TCP__GL300_SACK) is deprecated and will be removed in the next "
        "release: use protocols.gl300.sack (GATEWAY_PROTOCOLS__GL300__SACK)",
        "tcp.tk103_port (GATEWAY_TCP__TK103_PORT) is deprecated and will be removed in the next "
        "release: use protocols.tk103.port (GATEWAY_PROTOCOLS__TK103__PORT)",
    ]
    # Without old keys, nothing to warn about.
    monkeypatch.delenv("GATEWAY_TCP__TK103_PORT")
    assert load_settings(SHIPPED).deprecations == []


def test_every_protocol_is_documented_in_the_shipped_file() -> None:
    """Each registered protocol has its table in config/gateway.toml, every key shown at its
    default with its documentation (`gateway config protocols` prints the tables to paste)."""
    text = SHIPPED.read_text()
    assert protocol_tables() in text
    tables = tomllib.loads(text)["protocols"]
    for codec in codecs():
        defaults = {"port": codec.default_port, **{
            f.name: f.default for f in dataclasses.fields(codec.options)}}
        assert tables.get(codec.name) == defaults, codec.name


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[tcp]\ngl300_prot = 6004\n")
    with pytest.raises(ConfigError, match=r"tcp\.gl300_prot"):
        load_settings(path)


def test_bad_database_url_says_what_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[database]\nurl = "mysql://x"\n')
    with pytest.raises(ConfigError, match="sqlite\\+aiosqlite"):
        load_settings(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_malformed_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[tcp\nport=")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(path)


@pytest.mark.parametrize(("value", "says"), [
    ('["power_on", "sos"]', "an SOS is always told"),
    ('["battery_low"]', "unknown alarm types ['battery_low']"),
])
def test_quiet_alarm_types_are_checked(tmp_path: Path, value: str, says: str) -> None:
    path = tmp_path / "g.toml"
    path.write_text(f"[alarms]\nquiet_types = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "alarms.quiet_types" in str(info.value) and says in str(info.value)
