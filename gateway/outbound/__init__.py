"""What leaves the gateway after a commit: events for integrators (and, later, alarms to
owners and commands to devices)."""
