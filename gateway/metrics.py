"""Prometheus metrics of one gateway instance (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """All metrics in a registry of their own, so that several gateways can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.code_comparisons = Counter(
            "gateway_code_comparisons_total",
            "One-time codes compared with a stored one (each after its attempt was counted)",
            registry=r)
        self.codes_capped = Counter(
            "gateway_activation_codes_capped_total",
            "Codes not sent because their destination had too many (per 15 min or per day)",
            ["purpose"], registry=r)
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
            "Connections closed at once (limit per address reached)", ["protocol"], registry=r)
        self.connections_closed = Counter(
            "gateway_connections_closed_total",
            "Connections closed, by reason", ["protocol", "reason"], registry=r)
        self.frames = Counter(
            "gateway_frames_total", "Frames received, by result", ["protocol", "result"],
            registry=r)
        self.decode_errors = Counter(
            "gateway_decode_errors_total", "Frames the decoder rejected", ["protocol"], registry=r)
        self.rejected_frames = Counter(
            "gateway_rejected_frames_total",
            "Frames refused by the gateway (decoder, size, IMEI lock, rate)",
            ["protocol", "reason"], registry=r)
        self.positions = Counter(
            "gateway_positions_total", "Positions decoded", ["protocol"], registry=r)
        self.acks_pending = Gauge(
            "gateway_acks_pending", "Replies waiting for their data to be committed", registry=r)
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
            "gateway_store_up", "1 when the last database write succeeded", registry=r)
        self.mqtt_up = Gauge(
            "gateway_mqtt_up", "1 when connected to the MQTT broker", registry=r)
