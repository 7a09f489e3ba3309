"""Device activation: one-time codes that prove possession of a device.

Rules: docs/activation-rules.md; how they are met: docs/activation.md.

* `contacts`: IMEI and contact validation, masking.
* `codes`: code generation, HMAC storage form, tokens, the server key.
* `counters`: failure counters (device lock, account / client caps) and start rate limits.
* `audit`: the audit log.
* `service.ActivationService`: claims, sign-ins, releases, the device-signal hook.
"""

from gateway.activation.service import ActivationService, Failure, InvalidInput, RateLimited

__all__ = ["ActivationService", "Failure", "InvalidInput", "RateLimited"]
