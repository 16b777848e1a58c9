"""Authenticator assurance levels: which login mechanisms a host takes, how long
sessions last and how late failures answer (docs/protocol.md §5).

From utils/auth.py (AA_LEVEL1, AA_LEVEL2; 25.04 and later): level 1 is the
default; STIG mode (system.security `enable_gpos_stig`) sets level 2. SCRAM
joins level 1 in 26.0; 26.0.0-BETA.2 also allows it at level 2, which
26.0.0-BETA.3 takes back (the API key stack cannot ask for a second factor).
24.10 has no levels: it behaves as level 1 with its own login methods.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .config import HostConfig, release_tuple

DAY = 86400.0
SCRAM_AT_LEVEL_2_UNTIL = release_tuple("26.0.0-BETA.3")


@dataclass(frozen=True)
class AssuranceLevel:
    name: str                        # what login_ex's SUCCESS says in `authenticator`
    max_session_age: float
    max_inactivity: float | None
    mechanisms: tuple[str, ...]      # auth.mechanism_choices, in the server's order
    otp_mandatory: bool
    min_fail_delay: float

    def fail_delay(self) -> float:
        """ServerAAL.get_delay_interval: uniform between the minimum and one second more."""
        return random.uniform(self.min_fail_delay, self.min_fail_delay + 1)


def assurance_level(config: HostConfig) -> AssuranceLevel:
    """The level a host of this version and configuration runs at."""
    scram = ("SCRAM",) if config.version_info >= (26,) else ()
    if not config.stig or config.legacy_only:
        return AssuranceLevel("LEVEL_1", 30 * DAY, None, ("API_KEY_PLAIN", "TOKEN_PLAIN", "PASSWORD_PLAIN") + scram,
                              otp_mandatory=False, min_fail_delay=1.0)
    level_2_scram = scram if config.release < SCRAM_AT_LEVEL_2_UNTIL else ()
    return AssuranceLevel("LEVEL_2", 12 * 3600.0, 30 * 60.0, ("PASSWORD_PLAIN",) + level_2_scram,
                          otp_mandatory=True, min_fail_delay=4.0)
