"""The database handle: engine, session factory and the per-dialect setup.

SQLite (the default) is a single file, set up for "nothing acknowledged is lost":

* WAL journal: readers (web pages) never block the writer and the writer never blocks them.
* `synchronous=FULL`: every commit fsyncs the WAL before it returns. With `NORMAL`, a commit in
  WAL mode survives a crash of the process but not a power cut or kernel panic: the last
  transactions can roll back, and the device already deleted what we acknowledged. The cost of
  FULL is one fsync per commit, which group commit (`writer.py`) spreads over a whole batch.
* `busy_timeout`: wait for a lock held by another connection (a CLI, a backup) instead of failing
  at once; past it the writer sees "database is locked" and retries without failing anyone.
* `foreign_keys=ON`: SQLite ignores foreign keys unless asked.
* Transactions that write start with `BEGIN IMMEDIATE` (`Database.begin()`): they take the write
  lock up front, so busy_timeout applies, instead of failing when a read upgrades to a write.

The batches of positions (`ingest.write_batch`) skip the async layers on a SQLite file: they run
on one plain `sqlite3` connection owned by one thread (`SqliteWriter`), one thread hop per batch
instead of one per statement through aiosqlite and SQLAlchemy's async adapter (which cost more
CPU per batch than SQLite's own work for a batch of fifty positions). Same PRAGMAs, same
BEGIN IMMEDIATE.

PostgreSQL uses asyncpg with a small pool, pre-ping (a restarted server costs no failed batch),
and timeouts so that a vanished server is reported instead of hanging forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Execution option read by the SQLite "begin" hook: start the transaction with BEGIN IMMEDIATE.
_IMMEDIATE = "gateway_begin_immediate"


def normalize_url(url: str | URL) -> URL:
    """The URL with its async driver: `sqlite://` -> aiosqlite, `postgresql://` -> asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}: "
                         "use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


class Database:
    """An async engine and session factory for one database.

    Build it with `Database.connect(url)`; release it with `await db.dispose()`.
    """

    def __init__(self, engine: AsyncEngine, sqlite_busy_timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        path = _sqlite_file(engine.url) if engine.dialect.name == "sqlite" else None
        #: A SQLite file's batch writer (see the module docstring); None otherwise.
        self.sqlite_writer = (SqliteWriter(path, sqlite_busy_timeout_ms)
                              if path is not None else None)

    @property
    def dialect(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return self.engine.dialect.name

    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def is_file(self) -> bool:
        """True for a SQLite file (another engine on the same URL sees the same data)."""
        return self.dialect == "sqlite" and _sqlite_file(self.engine.url) is not None

    @classmethod
    def create(
        cls,
        url: str | URL,
        *,
        sqlite_busy_timeout_ms: int = 5000,
        pool_size: int = 5,
        max_overflow: int = 10,
        connect_timeout_s: float = 10.0,
        command_timeout_s: float = 60.0,
        pre_ping: bool = True,
        echo: bool = False,
    ) -> Database:
        """A handle on `url` without touching the database (no connection, no migration).

        The SQLite file's parent folder is created so that the first run works out of the box.
        `pre_ping` tests each PostgreSQL connection taken from the pool with a round trip; a
        user that retries failed transactions anyway (the group-commit writer) can skip it.
        """
        parsed = normalize_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if parsed.drivername == "postgresql+asyncpg":
            kwargs.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_pre_ping=pre_ping,
                # A connection is recycled before server-side idle timeouts or NAT drop it.
                pool_recycle=1800,
                connect_args={"timeout": connect_timeout_s, "command_timeout": command_timeout_s},
            )
            engine = create_async_engine(parsed, **kwargs)
        else:
            path = _sqlite_file(parsed)
            if path is not None:
                _owner_only(path)
                kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
            # Our own busy_timeout pragma governs lock waits; the driver's own timeout must not
            # cut it short.
            kwargs["connect_args"] = {"timeout": max(sqlite_busy_timeout_ms / 1000, 0.001)}
            engine = create_async_engine(parsed, **kwargs)
            _setup_sqlite(engine, sqlite_busy_timeout_ms)
            return cls(engine, sqlite_busy_timeout_ms)
        return cls(engine)

    @classmethod
    async def connect(
        cls,
        url: str | URL,
        *,
        auto_upgrade: bool | None = None,
        **options: Any,
    ) -> Database:
        """Open `url`; migrate it to the latest schema first when `auto_upgrade` says so.

        `auto_upgrade=None` (the default) migrates SQLite, whose file the gateway owns, and
        leaves PostgreSQL to an explicit `gateway db upgrade`. Other keyword arguments go to
        `Database.create`.
        """
        db = cls.create(url, **options)
        if auto_upgrade is None:
            auto_upgrade = db.dialect == "sqlite"
        if auto_upgrade:
            from gateway.store.migrate import upgrade_database

            try:
                await upgrade_database(db)
            except BaseException:
                await db.dispose()
                raise
        return db

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed on exit (rolled back on error).

        On SQLite the transaction starts with BEGIN IMMEDIATE (see the module docstring).
        """
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                await conn.execution_options(**{_IMMEDIATE: True})
            async with conn.begin():
                yield conn

    async def check(self) -> None:
        """Return when the database answers a trivial query; raise why it does not."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            await self.check()
        except Exception as exc:  # any failure means "not reachable", for health checks
            log.debug("database ping failed: %s", exc)
            return False
        return True

    async def dispose(self) -> None:
        """Close every pooled connection (and the SQLite batch writer's)."""
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()
        await self.engine.dispose()


def _sqlite_pragmas(connection: Any, busy_timeout_ms: int) -> None:
    """The settings of every connection to a SQLite database (see the module docstring)."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


#: The SQLite batch writer's page cache, in KiB, and its WAL auto-checkpoint, in pages.
WRITER_CACHE_KIB = 65536
WRITER_CHECKPOINT_PAGES = 10_000


class SqliteWriter:
    """One plain `sqlite3` connection to a SQLite file, used by one thread of its own.

    `await write(work)` runs `work(connection)` on that thread inside a BEGIN IMMEDIATE
    transaction, committed when `work` returns and rolled back when it raises. The connection
    and its thread start on first use (after migrations; again after `close()`, as a disposed
    engine does), and the connection is reopened after a failure that broke it.
    """

    def __init__(self, path: Path, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._transaction, work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            # isolation_level=None: the driver opens no transaction by itself; ours is explicit.
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=max(self.busy_timeout_ms / 1000, 0.001))
            try:
                _sqlite_pragmas(connection, self.busy_timeout_ms)
                # The writer touches a page of the device table, of each position index and
                # of the frame ring per device of a batch: a cache of 64 MiB (instead of
                # 2 MiB) keeps them for thousands of devices, and a checkpoint every 10,000
                # WAL pages (instead of 1,000) copies a page rewritten by many batches back
                # to the database file once. Together about 20% less CPU per position in
                # batches of 100 over 1,000 devices (67 -> 54 us, process CPU time).
                connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
                connection.execute(f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}")
                # A bulk statement that can hit a constraint keeps a statement journal (the
                # pages it changed, to undo it alone); past 64 KiB SQLite spills it to a temp
                # file, so every batch wrote about one page per device a second time, to a file
                # created and deleted per batch. Kept in memory it is bounded by the statement
                # (256 rows): 300 positions over 2,000 devices went from ~675 to ~390 write
                # calls per batch and from ~31 to ~25 us of CPU per position.
                connection.execute("PRAGMA temp_store = MEMORY")
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            try:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            except sqlite3.Error:  # the connection is unusable: open a new one next time
                connection.close()
                self._connection = None
            raise
        return result

    async def close(self) -> None:
        """Close the connection once the batch in progress (if any) has finished."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        await asyncio.get_running_loop().run_in_executor(thread, self._close)
        thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _owner_only(path: Path) -> None:
    """Create the database file (and its folder) readable by the gateway's user only.

    It holds owners' contacts, sessions and the audit log. SQLite gives its -wal and -shm files
    the permissions of the database file. A file left readable by others by an older version is
    tightened (and said so).
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(mode & 0o700)
        except OSError as exc:
            log.warning("the database file is readable by other users and could not be "
                        "restricted", extra={"path": str(path), "error": str(exc)})
            return
        log.warning("the database file was readable by other users: now owner-only",
                    extra={"path": str(path), "mode": oct(mode)})


def _setup_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver: it would otherwise BEGIN lazily (deferred)
        # before the first write; our "begin" hook below emits the BEGIN we want.
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection, busy_timeout_ms)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


#: PostgreSQL SQLSTATE classes worth retrying: connection exception, transaction rollback
#: (serialization failure, deadlock), insufficient resources (disk full, too many connections),
#: operator intervention (shutdown, restart, "cannot connect now"), system error (I/O).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_transient_error(exc: BaseException) -> bool:
    """True when retrying the same write later can succeed (the database is away or busy).

    False for data errors (constraint violations, bad values) and programming errors: those
    fail again whatever we wait, and the writer isolates the item that causes them.
    """
    if isinstance(exc, (OSError, TimeoutError)):
        # Connection refused / reset, and asyncpg's connect or command timeout.
        return True
    if isinstance(exc, sqlite3.Error):
        # The SQLite batch writer's own connection: "database is locked", "disk I/O error",
        # "unable to open" are OperationalError; constraint and value errors are not.
        return isinstance(exc, sqlite3.OperationalError)
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None)
        if isinstance(sqlstate, str) and len(sqlstate) == 5:
            return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
        cause = getattr(orig, "__cause__", None)
        if isinstance(cause, (OSError, TimeoutError)):
            return True
        if isinstance(orig, sqlite3.IntegrityError | sqlite3.DataError):
            return False
        # sqlite3.OperationalError: "database is locked", "disk I/O error", "unable to open".
        return type(exc).__name__ in ("OperationalError", "InterfaceError", "InternalError")
    if isinstance(exc, StatementError):
        # Raised before reaching the database (e.g. a value our types refuse).
        return False
    return False
