"""Storage of the gateway: SQLite (default) or PostgreSQL, through SQLAlchemy 2 async.

* `database.Database`: engine, sessions, per-dialect setup.
* `migrate.upgrade(url)`: Alembic migrations to the latest schema.
* `ingest.write_batch`: the bulk write path; `writer.GroupCommitWriter`: group commit, retries,
  backpressure, so that nothing acknowledged is lost.
* `queries`: the read side and binding changes.
"""

from gateway.store.database import Database, is_transient_error, normalize_url
from gateway.store.ingest import BatchResult, IngestItem, trim_frame_rings, write_batch
from gateway.store.migrate import upgrade
from gateway.store.models import DeviceState
from gateway.store.writer import GroupCommitWriter, ItemRejected, WriterClosed, WriterStats

__all__ = [
    "BatchResult",
    "Database",
    "DeviceState",
    "GroupCommitWriter",
    "IngestItem",
    "ItemRejected",
    "WriterClosed",
    "WriterStats",
    "is_transient_error",
    "normalize_url",
    "trim_frame_rings",
    "upgrade",
    "write_batch",
]
