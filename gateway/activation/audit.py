"""The audit log lives in `gateway.store.audit` (with the other SQL); kept importable here."""

from gateway.store.audit import AuditRow, read, record

__all__ = ["AuditRow", "read", "record"]
