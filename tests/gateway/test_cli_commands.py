"""`gateway` commands as an installer runs them in the first hour: the files a spreadsheet
writes, a PostgreSQL database not created yet, more devices than one page, and command output
that is the result alone. Each runs the real command in a process of its own, on SQLite and on
the real PostgreSQL server."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gateway.store.claiming import provisioning
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from protocols.events import Heartbeat
from protocols.imei import complete_imei

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def device(n: int) -> str:
    return complete_imei(f"35693803{n:06d}")


def gateway(cwd: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE__URL"] = store_url
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


async def contact_of_record(store_url: str, imei: str) -> str | None:
    db = Database.create(store_url)
    try:
        async with db.engine.connect() as conn:
            return (await provisioning(conn, imei, None)).contact
    finally:
        await db.dispose()


# import-devices -------------------------------------------------------------------------------

async def test_a_latin1_spreadsheet_export_is_imported_with_its_accents(
    tmp_path: Path, store_url: str
) -> None:
    # What a spreadsheet on Windows writes for "CSV": Windows-1252, CR LF, the columns in the
    # order the sheet has them (contact first).
    sheet = [("contact", "imei"), ("Jürgen.Müller@example.de", device(1)),
             ("+49 151 23456789", device(2)), ("françois@example.fr", device(3))]
    data = "".join(f"{a},{b}\r\n" for a, b in sheet).encode("cp1252")
    assert b"\xfc" in data  # the real bytes: ü is one byte, not UTF-8
    (tmp_path / "devices.csv").write_bytes(data)
    done = gateway(tmp_path, store_url, "import-devices", "devices.csv")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"provisioned": 3, "errors": 0}
    assert "Traceback" not in done.stderr
    # Said once, naming the first line that is not UTF-8 and the encoding used.
    assert "not UTF-8 (line 2: byte 0xFC)" in done.stderr
    assert "Windows-1252" in done.stderr
    assert await contact_of_record(store_url, device(1)) == "jürgen.müller@example.de"
    assert await contact_of_record(store_url, device(2)) == "+4915123456789"
    assert await contact_of_record(store_url, device(3)) == "françois@example.fr"


async def test_a_semicolon_export_and_an_imei_the_spreadsheet_made_a_number(
    tmp_path: Path, store_url: str
) -> None:
    # A spreadsheet in a locale with a decimal comma separates with semicolons, and shows a
    # 15-digit number in scientific notation unless the column is text.
    data = ("Contact;IMEI\r\n"
            f"müller@example.de;{device(4)}\r\n"
            "meier@example.de;3,56938E+14\r\n").encode("cp1252")
    (tmp_path / "devices.csv").write_bytes(data)
    done = gateway(tmp_path, store_url, "import-devices", "devices.csv")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"provisioned": 1, "errors": 1}
    assert ("devices.csv:3: imei: '3,56938E+14' is the IMEI turned into a number by the "
            "spreadsheet: format the IMEI column as text") in done.stderr
    assert await contact_of_record(store_url, device(4)) == "müller@example.de"


def test_utf8_with_a_byte_order_mark_and_utf16_exports(tmp_path: Path, store_url: str) -> None:
    utf8 = f"imei,contact\n{device(5)},zoë@example.nl\n".encode("utf-8-sig")
    # The "Unicode text" export: UTF-16 with its byte-order mark, tab separated.
    utf16 = f"imei\tcontact\r\n{device(6)}\tåsa@example.se\r\n".encode("utf-16")
    (tmp_path / "a.csv").write_bytes(utf8)
    (tmp_path / "b.txt").write_bytes(utf16)
    for name in ("a.csv", "b.txt"):
        done = gateway(tmp_path, store_url, "import-devices", name)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"provisioned": 1, "errors": 0}
        assert done.stderr == ""  # no guess to report


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_binary_file_or_a_workbook_is_refused_in_one_line(
    tmp_path: Path, store_url: str
) -> None:
    workbook = io.BytesIO()
    with zipfile.ZipFile(workbook, "w") as archive:  # how an .xlsx file is made
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "devices.xlsx").write_bytes(workbook.getvalue())
    # A binary file that is no workbook: text first, then the bytes of a program.
    (tmp_path / "devices.bin").write_bytes(
        f"imei,contact\n{device(7)},a@example.com\n".encode() + Path(sys.executable)
        .read_bytes()[:4096])
    for name, expected in [
        ("devices.xlsx", "devices.xlsx:1: this is a spreadsheet workbook (.xlsx, .ods or "
                         ".xls), not a CSV file: open it and save (or export) the sheet as CSV"),
        ("devices.bin", "devices.bin:3: binary data (byte 0x"),
    ]:
        done = gateway(tmp_path, store_url, "import-devices", name)
        assert done.returncode == 1
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith(f"error: {expected}"), done.stderr
        assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_encoding_given_by_name(tmp_path: Path, store_url: str) -> None:
    (tmp_path / "d.csv").write_bytes(f"{device(8)},ülkü@example.com.tr\n".encode("iso-8859-9"))
    done = gateway(tmp_path, store_url, "import-devices", "--encoding", "utf-8", "d.csv")
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: d.csv:1: byte 0xFC is not utf-8: give the file's "
                                   "encoding with --encoding (for example cp1252, latin-1, "
                                   "utf-8)")
    done = gateway(tmp_path, store_url, "import-devices", "--encoding", "iso-8859-9", "d.csv")
    assert done.returncode == 0 and done.stderr == ""


# db upgrade -----------------------------------------------------------------------------------

async def test_db_upgrade_on_a_missing_postgresql_database_says_how_to_create_it(
    tmp_path: Path, pg_admin_dsn: str
) -> None:
    name = f"gateway_missing_{uuid.uuid4().hex[:10]}"
    url = make_url(pg_admin_dsn).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    done = gateway(tmp_path, rendered, "db", "upgrade")
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    host, port = url.host or "localhost", url.port or 5432
    assert line == (
        f"gateway: database '{name}' does not exist on the PostgreSQL server at {host}:{port}: "
        f"create it with `createdb -h {host} -p {port} -U {url.username} {name}` (or in psql: "
        f"CREATE DATABASE \"{name}\";), then run `gateway db upgrade`")
    # The advice works: the statement it gives creates the database, and the upgrade passes.
    statement = re.search(r"CREATE DATABASE \"\w+\";", line)
    assert statement is not None
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(statement.group(0))
        again = gateway(tmp_path, rendered, "db", "upgrade")
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[0] == "database is at the latest schema"
        assert "server key: created in the database" in again.stdout
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def test_a_postgresql_server_that_is_not_running_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = gateway(tmp_path, f"postgresql+asyncpg://postgres@127.0.0.1:{port}/gateway",
                   "devices")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"gateway: no PostgreSQL server answers at 127.0.0.1:{port} (connection refused): "
        "start it, or fix the host and port in database.url (GATEWAY_DATABASE__URL)"]


# devices --------------------------------------------------------------------------------------

async def seen_devices(store_url: str, count: int) -> list[str]:
    """`count` devices seen one second apart, as their first frames register them; the most
    recently seen first."""
    devices = [device(100 + n) for n in range(count)]
    items = [IngestItem(imei, "gps103", "192.0.2.1", T0 + timedelta(seconds=n),
                        f"{imei};".encode(), (Heartbeat(imei),), None)
             for n, imei in enumerate(devices)]
    db = Database.create(store_url)
    try:
        await write_batch(db, items, 20)
    finally:
        await db.dispose()
    return devices[::-1]


async def test_devices_pages_through_more_than_a_hundred(tmp_path: Path, store_url: str) -> None:
    newest_first = await seen_devices(store_url, 207)

    def listed(*args: str) -> tuple[list[str], str]:
        done = gateway(tmp_path, store_url, "devices", *args)
        assert done.returncode == 0, done.stderr
        return [json.loads(line)["imei"] for line in done.stdout.splitlines()], done.stderr

    first, note = listed()
    assert first == newest_first[:100]
    assert note.strip() == ("showing 100 of 207 devices (rows 1-100); next: --offset 100; "
                            "all: --all")
    last, note = listed("--offset", "200")
    assert last == newest_first[200:]
    assert note.strip() == "showing 7 of 207 devices (rows 201-207); all: --all"
    middle, _ = listed("--limit", "5", "--offset", "100")
    assert middle == newest_first[100:105]
    everything, note = listed("--all")
    assert everything == newest_first and note == ""
    unclaimed, note = listed("--state", "unclaimed", "--limit", "300")
    assert len(unclaimed) == 207 and note == ""
    wrong = gateway(tmp_path, store_url, "devices", "--limit", "0")
    assert wrong.returncode == 2 and "--limit: must be 1 or more" in wrong.stderr


# bind, release --------------------------------------------------------------------------------

async def test_bind_and_release_say_what_is_wrong_with_the_device(
    tmp_path: Path, store_url: str
) -> None:
    [seen] = await seen_devices(store_url, 1)
    for args in (("bind", device(99), "owner@example.com"), ("release", device(99))):
        done = gateway(tmp_path, store_url, *args)
        assert done.returncode == 1
        assert done.stderr.strip() == f"error: no device {device(99)} has been seen"
    done = gateway(tmp_path, store_url, "release", seen)
    assert done.returncode == 0 and done.stdout.strip() == f"{seen} was not bound"
    done = gateway(tmp_path, store_url, "bind", seen, "owner@example.com")
    assert done.returncode == 0 and json.loads(done.stdout)["contact"] == "owner@example.com"
    done = gateway(tmp_path, store_url, "release", seen)
    assert done.returncode == 0 and done.stdout.strip() == f"released {seen}"


# output ---------------------------------------------------------------------------------------

def test_commands_print_their_result_and_log_only_when_asked(
    tmp_path: Path, store_url: str
) -> None:
    done = gateway(tmp_path, store_url, "provision", device(9), "dealer@example.com")
    assert done.returncode == 0
    assert json.loads(done.stdout)["imei"] == device(9)
    assert done.stderr == ""  # the audit line is not mixed into the output
    # Asked for: the audit line of what it did, on stderr, with the output unchanged.
    verbose = gateway(tmp_path, store_url, "provision", "-v", device(10), "dealer@example.com")
    assert json.loads(verbose.stdout)["imei"] == device(10)
    assert "INFO" in verbose.stderr and "action=provision" in verbose.stderr
    # Warnings still show without -v (what the user must know).
    audit = gateway(tmp_path, store_url, "audit", "--limit", "2")
    assert [json.loads(line)["imei"] for line in audit.stdout.splitlines()] == [
        device(10), device(9)]
    assert audit.stderr == ""
