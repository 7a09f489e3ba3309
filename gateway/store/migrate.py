"""Schema migrations (Alembic), configured in code: no alembic.ini, no dependence on the CWD.

`await upgrade(url)` brings a database to the latest schema; it backs `gateway db upgrade` and
runs on every start for SQLite. Running it on an up-to-date database does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection

from gateway.store.database import Database

#: The Alembic script folder, inside the package so an installed gateway finds it.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration for the gateway's migrations (and `url`, if given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        # Config options go through ConfigParser interpolation: a '%' in a password must be
        # doubled.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision of the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(url: str | URL) -> None:
    """Migrate the database at `url` to the latest schema (idempotent)."""
    db = Database.create(url)
    try:
        await upgrade_database(db)
    finally:
        await db.dispose()


async def upgrade_database(db: Database) -> None:
    """Migrate the database behind `db` to the latest schema, in one transaction."""
    config = alembic_config()
    async with db.begin() as conn:
        await conn.run_sync(_upgrade_on, config)


async def current_revision(db: Database) -> str | None:
    """The revision the database is at (None: never migrated)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )


def _upgrade_on(connection: Connection, config: Config) -> None:
    # env.py picks the connection up from here instead of building an engine of its own, so
    # the migration runs on our event loop, with our pragmas, in our transaction.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
