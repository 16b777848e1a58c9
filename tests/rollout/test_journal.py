"""Host states in the journal: typed in memory, the same plain strings on disk as before."""
from __future__ import annotations

import pytest

from fleetclt.errors import ConfigError
from fleetclt.fleet.results import Status
from fleetclt.rollout.journal import HostRecord, Journal
from fleetclt.rollout.observer import HostState

# what journals written before HostState existed hold, one state per host
OLD_LINES = [
    '{"kind":"host","host":"a","stage":0,"state":"waiting","job_id":null,"result":null,"error":null,'
    '"started":null,"finished":null,"submitted_at":null}',
    '{"kind":"host","host":"b","stage":0,"state":"submitting","job_id":null,"result":null,"error":null,'
    '"started":1.0,"finished":null,"submitted_at":1.0}',
    '{"kind":"host","host":"c","stage":0,"state":"running","job_id":3,"result":null,"error":null,'
    '"started":1.0,"finished":null,"submitted_at":1.0}',
    '{"kind":"host","host":"d","stage":1,"state":"ok","job_id":3,"result":true,"error":null,'
    '"started":1.0,"finished":2.0,"submitted_at":1.0}',
    '{"kind":"host","host":"e","stage":1,"state":"auth_failed","job_id":null,"result":null,'
    '"error":{"type":"AuthError","reason":"denied"},"started":1.0,"finished":2.0,"submitted_at":1.0}',
    '{"kind":"host","host":"f","stage":1,"state":"unhealthy","job_id":4,"result":null,'
    '"error":{"type":"HealthCheck","reason":"no"},"started":1.0,"finished":2.0,"submitted_at":1.0}',
    '{"kind":"host","host":"g","stage":1,"state":"not_started","job_id":null,"result":null,"error":null,'
    '"started":null,"finished":null,"submitted_at":null}',
    '{"kind":"host","host":"h","stage":1,"state":"detached","job_id":5,"result":null,"error":null,'
    '"started":1.0,"finished":null,"submitted_at":1.0}',
]


def old_journal(*lines: str) -> Journal:
    journal = Journal.create({"plan": {}, "inventory": "x.yaml"})
    with journal.path.open("a", encoding="utf-8") as file:
        file.writelines(line + "\n" for line in lines)
    return journal


def test_every_fan_out_status_is_a_host_state():
    """A failed host takes its error's Status value as its state."""
    assert {status.value for status in Status} <= {state.value for state in HostState}


def test_an_old_journal_replays_into_host_states():
    replay = old_journal(*OLD_LINES).replay()
    states = {name: record.state for name, record in replay.hosts.items()}
    assert states == {"a": HostState.WAITING, "b": HostState.SUBMITTING, "c": HostState.RUNNING,
                      "d": HostState.OK, "e": HostState.AUTH_FAILED, "f": HostState.UNHEALTHY,
                      "g": HostState.NOT_STARTED, "h": HostState.DETACHED}
    assert all(type(state) is HostState for state in states.values())


def test_a_record_is_written_as_the_same_plain_string_with_its_boot_id():
    journal = old_journal()
    journal.host(HostRecord("c", 0, HostState.RUNNING, job_id=3, started=1.0, boot_id="b-1", host_time=0.5))
    assert journal.path.read_text().splitlines()[-1] == OLD_LINES[2].replace(
        '"submitted_at":1.0}', '"boot_id":"b-1","host_time":0.5}')


def test_an_old_journal_has_no_boot_id_for_its_job_ids():
    """Resume then reports such a job `job_unknown` instead of following its id under any boot."""
    record = old_journal(OLD_LINES[2]).replay().hosts["c"]
    assert (record.job_id, record.boot_id, record.host_time) == (3, None, None)


def test_an_unknown_state_is_a_config_error_naming_the_journal():
    journal = old_journal(OLD_LINES[0].replace('"waiting"', '"exploded"'))
    with pytest.raises(ConfigError, match=r"unknown host state 'exploded'"):
        journal.replay()
