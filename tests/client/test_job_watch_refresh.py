"""A job read by id while its events flow: the answer must not undo an end the events already told.

The reader greenlet hands a call's answer over and goes on reading: events sent after the
answer (the job's last steps, its end) can be merged before the caller merges the answer.
Merged last, that older snapshot made a finished job look running again, and the waiter
slept until the next idle check (600 s). Seen with a job started over HTTP (/_upload) that
ended while its waiter first read it. The call here plays the reader's order exactly.
"""
from __future__ import annotations

import gevent

from fleetclt.client.job_watch import JobWatch
from fleetclt.protocol.jobs import JOB_EVENT, JobRef
from fleetclt.protocol.jsonrpc import CollectionUpdate


def job(state, percent):
    return {"id": 7, "method": "update.file", "arguments": [{}], "state": state, "result": None,
            "progress": {"percent": percent, "description": "", "extra": None}}


def test_an_end_told_by_events_wins_over_an_older_snapshot():
    watch = JobWatch("nas01")
    watch.booted("boot-1")

    def call(method, params):
        assert method == "core.get_jobs"
        watch.feed(CollectionUpdate("changed", JOB_EVENT, 7, job("SUCCESS", 100)))  # read first, merged first
        return [job("RUNNING", 50)]                                                    # the answer, merged after

    with gevent.Timeout(5):
        assert watch.wait(JobRef("boot-1", 7), lambda: call, idle=600, on_progress=None) is None
