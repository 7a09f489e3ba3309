"""The gateway as a separate process (`python -m gateway.cli run`), for signal tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from protocols import names
from tests.gateway.e2e.conftest import free_port

#: Starts tried when a port picked by free_port() was taken meanwhile (by another process, or
#: by an outgoing connection of this one: both use the ephemeral range).
START_ATTEMPTS = 3


class GatewayProcess:
    def __init__(self, store_url: str, workdir: Path, **settings: Any) -> None:
        self.base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
            "GATEWAY_DATABASE__URL": store_url,
            "GATEWAY_NOTIFY__OUTBOX_PATH": str(workdir / "outbox.jsonl"),
            "GATEWAY_LOG__FORMAT": "json",
        }
        self.settings = {f"GATEWAY_{key.upper()}": str(value) for key, value in settings.items()}
        self._pick_ports()
        self.workdir = workdir
        self.log_path = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _pick_ports(self) -> None:
        """Free ports for every listener (settings given to the constructor still win)."""
        ports = {name: free_port() for name in names()}
        self.http_port = free_port()
        self.env = {
            **self.base_env,
            **{f"GATEWAY_PROTOCOLS__{name.upper()}__PORT": str(port)
               for name, port in ports.items()},
            "GATEWAY_HTTP__PORT": str(self.http_port),
            **self.settings,
        }
        self.ports = {name: int(self.env[f"GATEWAY_PROTOCOLS__{name.upper()}__PORT"])
                      for name in names()}
        self.http_port = int(self.env["GATEWAY_HTTP__PORT"])

    async def start(self, timeout: float = 30.0) -> None:
        for attempt in range(START_ATTEMPTS):
            try:
                return await self._start(timeout)
            except _PortTaken:
                if attempt == START_ATTEMPTS - 1:
                    raise RuntimeError(f"no free ports:\n{self.log_path.read_text()}") from None
                self._pick_ports()

    async def _start(self, timeout: float) -> None:
        log = self.log_path.open("ab")
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run"], env=self.env, cwd=self.workdir,
            stdout=log, stderr=subprocess.STDOUT)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self.proc.poll() is not None:
                text = self.log_path.read_text()
                if "address already in use" in text[logged:]:
                    raise _PortTaken()
                raise RuntimeError(f"gateway exited early:\n{text}")
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", self.http_port)
            except OSError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(
                        f"gateway did not start:\n{self.log_path.read_text()}") from exc
                await asyncio.sleep(0.1)
                continue
            w.close()
            return

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while self.proc.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("gateway did not exit")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _PortTaken(Exception):
    """The gateway could not listen on a port picked for it: pick others and start again."""
