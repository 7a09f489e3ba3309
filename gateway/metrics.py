"""Prometheus metrics of one gateway instance (served at /metrics)."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class FrameCounts:
    """What the device pipeline counts for every frame, as plain integers.

    A prometheus_client counter takes a lock per update; at one frame per read, the frame,
    position and pending-ack counts cost several lock round trips per frame. These are bumped
    without one (the event loop is the only writer) and exported when /metrics is read.
    """

    __slots__ = ("acks_pending", "frames", "positions")

    def __init__(self) -> None:
        #: (protocol, result) -> frames; result is "ok" or "rejected".
        self.frames: collections.Counter[tuple[str, str]] = collections.Counter()
        self.positions: collections.Counter[str] = collections.Counter()
        #: Replies waiting for their data to be committed.
        self.acks_pending = 0


class _FrameCountsCollector(Collector):
    def __init__(self, counts: FrameCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        frames = CounterMetricFamily("gateway_frames", "Frames received, by result",
                                     labels=["protocol", "result"])
        for (protocol, result), value in list(counts.frames.items()):
            frames.add_metric([protocol, result], value)
        yield frames
        positions = CounterMetricFamily("gateway_positions", "Positions decoded",
                                        labels=["protocol"])
        for protocol, value in list(counts.positions.items()):
            positions.add_metric([protocol], value)
        yield positions
        yield GaugeMetricFamily("gateway_acks_pending",
                                "Replies waiting for their data to be committed",
                                value=counts.acks_pending)


class Metrics:
    """All metrics in a registry of their own, so that several gateways can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.instance_info = Gauge(
            "gateway_instance_info", "This gateway instance (instance.name), always 1",
            ["instance"], registry=r)
        self.code_comparisons = Counter(
            "gateway_code_comparisons_total",
            "One-time codes compared with a stored one (each after its attempt was counted)",
            registry=r)
        self.codes_capped = Counter(
            "gateway_activation_codes_capped_total",
            "Codes not sent because their destination had too many (per 15 min or per day)",
            ["purpose"], registry=r)
        self.signal_refused = Counter(
            "gateway_activation_signal_refused_total",
            "Device signals (SOS) that did not prove possession, by reason "
            "(second_link: another connection named the device)", ["reason"], registry=r)
        self.device_locks = Counter(
            "gateway_activation_device_locks_total",
            "Devices whose self-service claiming was locked after consecutive failures",
            registry=r)
        self.admin_auth_failures = Counter(
            "gateway_admin_auth_failures_total",
            "Requests to the admin API or /metrics with a wrong or missing token", registry=r)
        self.connections = Gauge(
            "gateway_connections", "Open device connections", ["protocol"], registry=r)
        self.connections_refused = Counter(
            "gateway_connections_refused_total",
            "Connections closed at once (a PROXY header expected and not sent)", ["protocol"],
            registry=r)
        self.connections_evicted = Counter(
            "gateway_connections_evicted_total",
            "Unidentified connections closed to make room for a newer one from the same "
            "address (tcp.max_connections_per_addr)", ["protocol"], registry=r)
        self.connections_closed = Counter(
            "gateway_connections_closed_total",
            "Connections closed, by reason", ["protocol", "reason"], registry=r)
        #: Frames, positions and pending acks (plain integers; see FrameCounts).
        self.counts = FrameCounts()
        r.register(_FrameCountsCollector(self.counts))
        self.decode_errors = Counter(
            "gateway_decode_errors_total", "Frames the decoder rejected", ["protocol"], registry=r)
        self.rejected_frames = Counter(
            "gateway_rejected_frames_total",
            "Frames refused by the gateway (decoder, size, IMEI lock, rate)",
            ["protocol", "reason"], registry=r)
        self.frame_notes = Counter(
            "gateway_frame_notes_total",
            "Frames a protocol accepted despite a flaw its policy tolerates (e.g. a wrong CRC)",
            ["protocol", "note"], registry=r)
        self.store_pending = Gauge(
            "gateway_store_pending", "Items received and not yet committed", registry=r)
        self.store_batch_size = Histogram(
            "gateway_store_batch_size", "Items per committed batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000), registry=r)
        self.store_commit_seconds = Histogram(
            "gateway_store_commit_seconds", "Time to write and commit one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r)
        self.store_failures = Counter(
            "gateway_store_failures_total", "Batch writes that failed and will be retried",
            registry=r)
        self.store_up = Gauge(
            "gateway_store_up",
            "1 when the last database write succeeded (before the first write: when the "
            "database answered at start)", registry=r)
        self.mqtt_up = Gauge(
            "gateway_mqtt_up", "1 when connected to the MQTT broker", registry=r)
        self.mqtt_messages = Counter(
            "gateway_mqtt_messages_total", "Messages received on device topics, by result",
            ["result"], registry=r)
        self.mqtt_connects = Counter(
            "gateway_mqtt_connects_total", "Connections made to the MQTT broker", registry=r)
        self.mqtt_events = Counter(
            "gateway_mqtt_events_total", "JSON events published for integrators", ["type"],
            registry=r)
        self.live_streams = Gauge(
            "gateway_live_streams", "Live update streams (Server-Sent Events) open here",
            registry=r)
        self.live_events = Counter(
            "gateway_live_events_total",
            "Events for live streams: queued for a browser, or dropped (a browser too slow)",
            ["result"], registry=r)
        self.live_overflows = Counter(
            "gateway_live_overflows_total",
            "Live streams ended because the browser did not keep up (told to reload)",
            registry=r)
        self.live_bus_up = Gauge(
            "gateway_live_bus_up",
            "1 while live updates reach the other instances (PostgreSQL LISTEN connection)",
            registry=r)
        self.live_bus_dropped = Counter(
            "gateway_live_bus_dropped_total",
            "Events not sent to other instances (their link was down or too far behind)",
            registry=r)
        self.commands = Counter(
            "gateway_commands_total",
            "Commands to devices that reached a status (queued, sent, acknowledged, failed, "
            "expired) on this instance", ["status"], registry=r)
        self.alarm_notifications = Counter(
            "gateway_alarm_notifications_total",
            "Alarms of bound devices told to their owner (sent, failed) or not "
            "(suppressed: alarms.min_interval_s; capped: alarms.max_per_device_hour; quiet: "
            "alarms.quiet_types)",
            ["result"], registry=r)
