"""Builders and checks shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from gateway.store.database import Database
from gateway.store.ingest import IngestItem
from protocols.events import Alarm, AlarmType, Event, Heartbeat, Position

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def imei(n: int) -> str:
    """A distinct 15-digit device id per n."""
    return f"86{n:013d}"


def position(device: str, seconds: float, *, lat: float = 52.5, lon: float = 13.4,
             valid: bool = True, speed: float | None = 10.0) -> Position:
    return Position(device_id=device, fix_time=T0 + timedelta(seconds=seconds), valid=valid,
                    lat=lat, lon=lon, speed_kmh=speed, course_deg=90.0, altitude_m=30.0,
                    satellites=7, hdop=1.2)


def item(device: str, *events: Event, received: float = 0.0, raw: bytes | None = None,
         remote: str | None = "192.0.2.1:40000", rejected: str | None = None,
         protocol: str = "gps103") -> IngestItem:
    return IngestItem(
        device_id=device,
        protocol=protocol,
        remote_addr=remote,
        received_at=T0 + timedelta(seconds=received),
        raw=raw if raw is not None else f"frame {device} {received}".encode(),
        events=events or (Heartbeat(device),),
        rejected_reason=rejected,
    )


def fix_item(device: str, seconds: float, **kwargs: Any) -> IngestItem:
    """A frame carrying one position at T0 + seconds (received at the same time)."""
    return item(device, position(device, seconds, **kwargs), received=seconds)


def sos(device: str, seconds: float, *, with_fix: bool = True) -> Alarm:
    return Alarm(device_id=device, alarm=AlarmType.SOS, raw_code="help me",
                 position=position(device, seconds) if with_fix else None,
                 event_time=None if with_fix else T0 + timedelta(seconds=seconds))


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def count_positions(db: Database, device: str | None = None) -> int:
    if device is None:
        return int(await scalar(db, "SELECT count(*) FROM positions"))
    return int(await scalar(
        db, "SELECT count(*) FROM positions p JOIN devices d ON d.id = p.device_id "
            "WHERE d.imei = :imei", imei=device))
