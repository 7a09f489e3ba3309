"""What an operator sees in the first minutes of a new gateway, over real sockets: the store
metric right at start, a database that is not there yet, error pages in a browser and JSON for
API clients, and log lines fit for a file or the journal."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.server import Gateway
from protocols import names
from tests.gateway.e2e.conftest import StartGateway

#: What Chromium sends when it opens a page.
BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,*/*;q=0.8")


def store_up(metrics: str) -> float:
    [line] = [line for line in metrics.splitlines() if line.startswith("gateway_store_up ")]
    return float(line.split()[1])


# gateway_store_up -----------------------------------------------------------------------------

async def test_store_up_reads_1_from_the_start(gateway: Gateway) -> None:
    # Nothing written yet: no device has sent anything.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
        metrics = (await client.get("/metrics")).text
        health = (await client.get("/healthz")).json()
    assert health["database"] == "up"
    assert store_up(metrics) == 1.0


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("what", ["server down", "database missing"])
async def test_store_up_reads_0_at_start_and_the_log_says_why(
    store_url: str, what: str, caplog: pytest.LogCaptureFixture, start_gateway: StartGateway
) -> None:
    url = make_url(store_url)
    if what == "server down":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = url.set(host="127.0.0.1", port=sock.getsockname()[1])
        expected = "(connection refused): start it, or fix the host and port in database.url"
    else:
        url = url.set(database=f"gateway_missing_{uuid.uuid4().hex[:10]}")
        expected = f"create it with `createdb -h {url.host} -p {url.port or 5432}"
    caplog.set_level(logging.WARNING, logger="gateway")
    # Started (and stopped) by the fixture: it takes fresh ports if one was taken meanwhile.
    gateway = await start_gateway(database={"url": url.render_as_string(hide_password=False)})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
        metrics = (await client.get("/metrics")).text
        health = await client.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "down"
    assert store_up(metrics) == 0.0
    [warning] = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("the database cannot be used yet")]
    assert expected in warning, warning


# error pages ----------------------------------------------------------------------------------

async def test_a_browser_gets_a_page_for_a_missing_address_and_an_api_client_json(
    gateway: Gateway,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
        page = await client.get("/no-such-page", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>Page not found</h1>" in page.text
        assert "There is no page at /no-such-page." in page.text
        assert 'href="/static/style.css"' in page.text  # the site's own page, with its style
        assert "default-src 'self'" in page.headers["content-security-policy"]
        # API clients, and the API's own addresses even in a browser, get JSON.
        for path, accept in [("/no-such-page", None), ("/no-such-page", "application/json"),
                             ("/api/v1/no-such-thing", BROWSER_ACCEPT),
                             ("/static/no-such-file.js", BROWSER_ACCEPT)]:
            headers = {"Accept": accept} if accept else {}
            answer = await client.get(path, headers=headers)
            assert answer.status_code == 404, path
            assert answer.json() == {"detail": "Not Found"}, (path, accept)
        # An error with a message of its own shows it: a form posted from an expired page.
        expired = await client.post("/claim", data={"imei": "1", "contact": "x", "csrf": "old"},
                                    headers={"Accept": BROWSER_ACCEPT})
        assert expired.status_code == 403
        assert expired.headers["content-type"].startswith("text/html")
        assert "<h1>Not allowed</h1>" in expired.text
        assert ("This form has expired: go back, reload the page and submit again"
                in expired.text)
        wrong_method = await client.delete("/claim", headers={"Accept": BROWSER_ACCEPT})
        assert wrong_method.status_code == 405
        assert "<h1>Not available this way</h1>" in wrong_method.text
        assert wrong_method.headers["allow"]


# log lines ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_colour_codes_in_log_lines_written_to_a_file(
    tmp_path: Path, store_url: str, fmt: str
) -> None:
    """`gateway run 2>gateway.log`, as a service manager or journald takes its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({f"GATEWAY_PROTOCOLS__{name.upper()}__PORT": "0" for name in names()})
    env.update({"GATEWAY_DATABASE__URL": store_url, "GATEWAY_HTTP__PORT": str(_free_port()),
                "GATEWAY_LOG__FORMAT": fmt, "GATEWAY_NOTIFY__OUTBOX_PATH":
                str(tmp_path / "outbox.jsonl"),
                "GATEWAY_ACTIVATION__SERVER_KEY": "log-test-server-key-0123456789abcdef"})
    log_file = tmp_path / "gateway.log"
    with log_file.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run"], env=env,
                                   cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while b"gateway started" not in log_file.read_bytes():
                assert process.poll() is None, log_file.read_text()
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    data = log_file.read_bytes()
    assert b"\x1b" not in data, data
    assert b"color_message" not in data
    lines = data.decode().splitlines()
    uvicorn = [line for line in lines if "Started server process" in line]
    assert len(uvicorn) == 1  # uvicorn's own line is there, plain
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        [started] = [r for r in records if r["msg"].startswith("Started server process")]
        assert started["logger"] == "uvicorn.error"
        assert "color_message" not in started
