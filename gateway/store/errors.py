"""What a failure to reach the database means for the person running the gateway, in one line.

`explain(exc, url)` reads the error chain (SQLAlchemy wraps the driver's error, which wraps the
server's SQLSTATE) and says what is wrong and what to do: create the database, start the
server, fix the user or password in `database.url`, run `gateway db upgrade`. None when the
error is none of those (a bug: its traceback is the useful part).
"""

from __future__ import annotations

import shlex
import socket
import sqlite3
from collections.abc import Iterator

from sqlalchemy.engine import URL, make_url

#: Where the database URL is configured, named in every message.
_KEY = "database.url (GATEWAY_DATABASE__URL)"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None,
                 current.__cause__, current.__context__]


def _sqlstate(exc: BaseException) -> str | None:
    for error in _chain(exc):
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and len(state) == 5:
            return state
    return None


def _where(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def create_database_command(url: URL) -> str:
    """The shell command that creates the database of a PostgreSQL `url`."""
    args = ["createdb", "-h", url.host or "localhost", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    args.append(url.database or "")
    return shlex.join(args)


def explain(exc: BaseException, url: str | URL) -> str | None:
    """One line saying what is wrong with the database at `url` and how to fix it; None when
    `exc` is no connection or schema problem."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() == "sqlite":
        return _explain_sqlite(exc, parsed)
    where = _where(parsed)
    user = parsed.username or "(default user)"
    state = _sqlstate(exc)
    if state == "3D000":
        return (f"database {parsed.database!r} does not exist on the PostgreSQL server at "
                f"{where}: create it with `{create_database_command(parsed)}` (or in psql: "
                f"CREATE DATABASE \"{parsed.database}\";), then run `gateway db upgrade`")
    if state in ("28000", "28P01"):
        return (f"PostgreSQL at {where} refused user {user!r} ({_message(exc, state)}): check "
                f"the user and password in {_KEY}")
    if state == "42P01":
        return (f"the database {parsed.database!r} at {where} has no gateway tables yet: run "
                "`gateway db upgrade`")
    if state is not None and state[:2] in ("53", "57"):
        return (f"PostgreSQL at {where} cannot take the connection now ({_message(exc, state)})"
                ": try again, or look at the server's log")
    for error in _chain(exc):
        if isinstance(error, socket.gaierror):
            return (f"unknown database host {parsed.host!r} ({error.strerror}): check the host "
                    f"in {_KEY}")
        if isinstance(error, ConnectionRefusedError):
            return (f"no PostgreSQL server answers at {where} (connection refused): start it, "
                    f"or fix the host and port in {_KEY}")
        if isinstance(error, TimeoutError):
            return (f"no answer from PostgreSQL at {where} in time: check that the server is "
                    f"up and that a firewall lets the port through ({_KEY})")
        if isinstance(error, OSError) and error.strerror:
            return (f"cannot reach PostgreSQL at {where}: {error.strerror}; check {_KEY} and "
                    "that the server is running")
    return None


def _message(exc: BaseException, state: str) -> str:
    """The server's own message for `state` (its text is the server's, never ours)."""
    for error in _chain(exc):
        if getattr(error, "sqlstate", None) == state:
            return str(error).splitlines()[0][:200]
    return state


def _explain_sqlite(exc: BaseException, url: URL) -> str | None:
    path = url.database or ""
    for error in _chain(exc):
        if isinstance(error, sqlite3.OperationalError):
            text = str(error)
            if "unable to open" in text or "readonly" in text:
                return (f"cannot open the SQLite database {path!r} ({text}): check that its "
                        f"folder exists and is writable by this user, or change {_KEY}")
            if "no such table" in text:
                return (f"the SQLite database {path!r} has no gateway tables: start the "
                        "gateway once (`gateway run` migrates it) or run `gateway db upgrade`")
        if isinstance(error, OSError) and error.strerror:
            return (f"cannot create the SQLite database {path!r}: {error.strerror}; change "
                    f"{_KEY} or create its folder")
    return None
