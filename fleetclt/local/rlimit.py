"""Open-file limits: raise the soft limit before opening thousands of sockets."""
from __future__ import annotations

import resource

from ..errors import ConfigError

FD_MARGIN = 64


def ensure_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to fit `needed` descriptors; returns the new soft limit.

    Fails with a clear ConfigError, not an EMFILE halfway through a fan-out,
    when even the hard limit is too small.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed + FD_MARGIN
    if wanted <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and wanted > hard:
        raise ConfigError(
            f"{needed} sockets need {wanted} open files but the hard limit is {hard}; "
            "raise it (ulimit -Hn, systemd LimitNOFILE) or split the fleet")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
