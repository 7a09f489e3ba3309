"""Simulated trackers built on the device-side encoders of `protocols/`.

* `SimDevice` (simulators.device): one device's behaviour, a state machine without I/O.
* `TcpLink` (simulators.links), `SerialLink` / `NmeaInput` / `NmeaOutput`
  (simulators.serial_link), `MqttLink` (simulators.mqtt_link): transports.
* `run_fleet` (simulators.fleet): thousands of devices in one process, with a summary.
* `run_check` (simulators.check): the installer's pass/fail check of a gateway port.
* `Route` (simulators.routes): NMEA logs, GPX files, generated street-grid drives.
"""

from simulators.device import DeviceConfig, DeviceStats, Kind, SimDevice, State
from simulators.fleet import FleetConfig, FleetSummary, run_fleet
from simulators.identity import imei_for, random_imei
from simulators.links import Backoff, TcpLink
from simulators.mqtt_link import MqttLink
from simulators.routes import LiveSource, Route, RouteSource, load_route
from simulators.scheduler import Scheduler

__all__ = [
    "Backoff",
    "DeviceConfig",
    "DeviceStats",
    "FleetConfig",
    "FleetSummary",
    "Kind",
    "LiveSource",
    "MqttLink",
    "Route",
    "RouteSource",
    "Scheduler",
    "SimDevice",
    "State",
    "TcpLink",
    "imei_for",
    "load_route",
    "random_imei",
    "run_fleet",
]
