"""Alembic migrations of the gateway store (see gateway.store.migrate)."""
