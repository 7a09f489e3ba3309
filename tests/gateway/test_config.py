from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, Settings, load_settings

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
    assert (settings.tcp.gps103_port, settings.tcp.tk103_port, settings.tcp.gl300_port) == (
        5001, 5002, 5004)
    assert settings.database.url.startswith("sqlite+aiosqlite:///")


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[tcp]\ngl300_port = 6004\nhost = "127.0.0.2"\n')
    monkeypatch.setenv("GATEWAY_TCP__GL300_PORT", "15004")
    monkeypatch.setenv("GATEWAY_ADMIN__TOKEN", "s3cret-s3cret-s3cret-s3cret-s3cret")
    settings = load_settings(path)
    assert settings.tcp.gl300_port == 15004
    assert settings.tcp.host == "127.0.0.2"
    assert settings.admin.token == "s3cret-s3cret-s3cret-s3cret-s3cret"


def test_wrong_value_names_key_and_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TCP__GL300_PORT", "70000")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "tcp.gl300_port" in message
    assert "65535" in message
    assert "GATEWAY_TCP__GL300_PORT" in message


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
