"""`gateway` command line: start-up errors say what to change."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


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


def test_busy_device_port_names_the_key(tmp_path: Path, busy_port: int) -> None:
    result = run_gateway(tmp_path, TCP__GL300_PORT=str(busy_port), TCP__GPS103_PORT="0",
                         TCP__TK103_PORT="0", HTTP__PORT=str(_free()))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{busy_port} for gl300" in result.stderr
    assert "change tcp.gl300_port" in result.stderr


def test_busy_http_port_names_the_key(tmp_path: Path, busy_port: int) -> None:
    result = run_gateway(tmp_path, HTTP__PORT=str(busy_port), TCP__GPS103_PORT=str(_free()),
                         TCP__TK103_PORT=str(_free()), TCP__GL300_PORT=str(_free()))
    assert result.returncode == 1
    assert "change http.port" in result.stderr


def test_invalid_setting_exits_2_with_the_key(tmp_path: Path) -> None:
    result = run_gateway(tmp_path, TCP__TK103_PORT="seventy")
    assert result.returncode == 2
    assert "tcp.tk103_port" in result.stderr
    assert "GATEWAY_TCP__TK103_PORT" in result.stderr
