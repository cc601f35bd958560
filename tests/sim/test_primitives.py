"""SimTask's log line for exceptions that were never retrieved."""

import gc
import logging
import random

import simpy

from simsi.core.errors import DeadIncarnationError
from simsi.sim import HostClock, SimRuntime


def make_runtime():
    return SimRuntime(simpy.Environment(), HostClock(), random.Random(7), "host-0#1")


def fail_later(runtime, exc):
    async def body():
        await runtime.sleep(1)
        raise exc

    return body()


def never_retrieved(caplog):
    return [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_unretrieved_failure_is_logged(caplog):
    runtime = make_runtime()
    runtime.spawn(fail_later(runtime, ValueError("boom")), "failing")

    with caplog.at_level(logging.ERROR, logger="simsi.sim.primitives"):
        runtime.env.run()
        gc.collect()

    records = never_retrieved(caplog)
    assert len(records) == 1
    assert "'failing'" in records[0].getMessage()


def test_failure_after_kill_is_not_logged(caplog):
    runtime = make_runtime()
    task = runtime.spawn(fail_later(runtime, ValueError("boom")), "failing")
    runtime.env.run(until=2)
    assert task.done()

    runtime.kill()
    with caplog.at_level(logging.ERROR, logger="simsi.sim.primitives"):
        del task
        gc.collect()

    assert never_retrieved(caplog) == []


def test_dead_incarnation_error_is_not_logged(caplog):
    runtime = make_runtime()
    runtime.spawn(fail_later(runtime, DeadIncarnationError("write rejected")), "dead-write")

    with caplog.at_level(logging.ERROR, logger="simsi.sim.primitives"):
        runtime.env.run()
        gc.collect()

    assert never_retrieved(caplog) == []
