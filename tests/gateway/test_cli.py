"""`gateway` command line: start-up errors say what to change."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocols import names


def run_gateway(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    clean.update({f"GATEWAY_{k}": v for k, v in env.items()})
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run"], env=clean, cwd=tmp_path,
        capture_output=True, text=True, timeout=60)


@pytest.fixture
def busy_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def _free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ports(**chosen: int) -> dict[str, str]:
    """Environment giving every registered protocol port 0 (no listener) but those chosen."""
    return {f"PROTOCOLS__{name.upper()}__PORT": str(chosen.get(name, 0)) for name in names()}


def test_busy_device_port_names_the_key(tmp_path: Path, busy_port: int) -> None:
    result = run_gateway(tmp_path, **ports(gl300=busy_port), HTTP__PORT=str(_free()))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{busy_port} for gl300" in result.stderr
    assert "change protocols.gl300.port" in result.stderr


def test_busy_http_port_names_the_key(tmp_path: Path, busy_port: int) -> None:
    result = run_gateway(tmp_path, HTTP__PORT=str(busy_port), **ports(gl300=_free()))
    assert result.returncode == 1
    assert "change http.port" in result.stderr


def test_invalid_setting_exits_2_with_the_key(tmp_path: Path) -> None:
    result = run_gateway(tmp_path, PROTOCOLS__TK103__PORT="seventy")
    assert result.returncode == 2
    assert "protocols.tk103.port" in result.stderr
    assert "GATEWAY_PROTOCOLS__TK103__PORT" in result.stderr


def test_invalid_old_key_names_what_was_written(tmp_path: Path) -> None:
    result = run_gateway(tmp_path, TCP__TK103_PORT="seventy")
    assert result.returncode == 2
    assert "given as tcp.tk103_port, environment GATEWAY_TCP__TK103_PORT" in result.stderr


def test_old_keys_still_start_the_gateway_with_a_warning(tmp_path: Path) -> None:
    """The previous release's tcp.<protocol>_port / tcp.gl300_sack keep working for one release:
    the gateway listens where they say and answers as they say, and warns with the new key."""
    port, http = _free(), _free()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    # Every other listener off; gl300's port comes from the old key only (a new key would win).
    env.update({f"GATEWAY_{k}": v for k, v in ports().items() if "GL300" not in k})
    env.update({"GATEWAY_TCP__GL300_PORT": str(port), "GATEWAY_TCP__GL300_SACK": "true",
                "GATEWAY_HTTP__PORT": str(http)})
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run"], env=env,
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)
        with sock:
            # A heartbeat: with SACK on, the gateway adds +SACK:<count>$ (the old key worked).
            sock.sendall(b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$")
            got = b""
            sock.settimeout(10)
            while b"+SACK:11F0$" not in got:
                chunk = sock.recv(1024)
                assert chunk, got
                got += chunk
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    assert ("tcp.gl300_port (GATEWAY_TCP__GL300_PORT) is deprecated and will be removed in the "
            "next release: use protocols.gl300.port (GATEWAY_PROTOCOLS__GL300__PORT)") in err
    assert "use protocols.gl300.sack (GATEWAY_PROTOCOLS__GL300__SACK)" in err


def test_db_upgrade_creates_the_shared_server_key_once(tmp_path: Path, pg_admin_dsn: str) -> None:
    """On PostgreSQL every instance reads one server key from the database: `gateway db
    upgrade` creates it (from the key file of a deployment that started on one machine)."""
    import asyncio
    import uuid

    import asyncpg
    from sqlalchemy.engine import make_url

    names = [f"gateway_cli_{uuid.uuid4().hex[:10]}" for _ in range(2)]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def stored_key(name: str) -> str:
        dsn = make_url(pg_admin_dsn).set(database=name).render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval(
                "SELECT value FROM server_secrets WHERE name = 'server_key'"))
        finally:
            await conn.close()

    for name in names:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(pg_admin_dsn).set(drivername="postgresql+asyncpg", database=names[0])
        env = {"DATABASE__URL": url.render_as_string(hide_password=False)}
        first = run_cli(tmp_path, ["db", "upgrade"], **env)
        assert first.returncode == 0, first.stderr
        assert "server key: created in the database (new)" in first.stdout
        again = run_cli(tmp_path, ["db", "upgrade"], **env)
        assert "server key: already in the database" in again.stdout
        assert len(asyncio.run(stored_key(names[0]))) == 64
        # A deployment that ran on one machine brings its key file along.
        key_file = tmp_path / "server.key"
        key_file.write_text("k" * 40 + "\n")
        seeded = run_cli(tmp_path, ["db", "upgrade"], ACTIVATION__SERVER_KEY_FILE=str(key_file),
                         DATABASE__URL=url.set(database=names[1]).render_as_string(
                             hide_password=False))
        assert f"created in the database (from {key_file})" in seeded.stdout
        assert asyncio.run(stored_key(names[1])) == "k" * 40
    finally:
        for name in names:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_cli(tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    clean.update({f"GATEWAY_{k}": v for k, v in env.items()})
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=clean, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_labels_help_names_the_command_and_its_file(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["labels", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "print a sheet of device labels" in out
    assert "CSV file of imei,claim_key rows" in out
