"""Many hosts at once: a session per inventory host, fan-out of calls and jobs, per-host results."""
