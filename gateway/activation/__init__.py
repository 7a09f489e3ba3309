"""Device activation: one-time codes that prove possession of a device.

Rules: docs/activation-rules.md; how they are met: docs/activation.md.

* `service.ActivationService`: the flows below over one code engine.
* `engine`: issue, send (per-destination caps), check, count (locks, caps).
* `claims`, `signin`, `releases`, `account`, `provisioning`: one module per flow.
* `contacts`: IMEI and contact validation, masking; `codes`: codes, HMACs, tokens, the server
  key; `claim_keys`: the keys on device labels; `sealed`: TOTP secrets at rest; `totp`;
  `labels`: label sheets for installers.

Every SQL statement lives in `gateway.store` (`challenges`, `claiming`, `accounts`, `counters`,
`audit`, `owned`).
"""

from gateway.activation.contacts import InvalidInput
from gateway.activation.engine import Failure, OwnerInfo, RateLimited, SignedIn, Started
from gateway.activation.service import ActivationService

__all__ = ["ActivationService", "Failure", "InvalidInput", "OwnerInfo", "RateLimited",
           "SignedIn", "Started"]
