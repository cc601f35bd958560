from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from simsi.core.interface import StableInterface
from simsi.testing.stateful import ClusterMachine

FAST = settings(
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


class Reminders(StableInterface):
    """Counts requests and sets one reminder per request."""

    def __init__(self, instance_id):
        super().__init__(instance_id)
        self.count = 0

    async def on_request(self, ctx, payload):
        self.count += 1
        await ctx.set_alarm(f"r{self.count}", ctx.now() + payload, {"n": self.count})
        return self.count

    async def on_alarm(self, ctx, alarm_id, meta):
        await ctx.sleep(0.01)


class RemindersMachine(ClusterMachine):
    interface = Reminders
    instance_ids = ("a", "b")
    payloads = st.floats(min_value=0.1, max_value=30)

    def on_response(self, instance_id, payload, response):
        if response.ok:
            assert response.value >= 1


def test_machine_holds_for_correct_class():
    run_state_machine_as_test(RemindersMachine, settings=FAST)


class PersistentCounterMachine(ClusterMachine):
    """Claims the count survives crashes, which in-memory state does not."""

    interface = Reminders
    hosts = "host-0"
    shards = 4
    instance_ids = ("a",)
    payloads = st.just(5.0)
    drain_s = 30.0

    def __init__(self):
        super().__init__()
        self.last = 0

    def on_response(self, instance_id, payload, response):
        if response.ok:
            assert response.value == self.last + 1, (response.value, self.last)
            self.last = response.value


def test_machine_finds_state_lost_in_crash():
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(
            PersistentCounterMachine,
            settings=settings(
                FAST,
                max_examples=400,
                stateful_step_count=10,
                phases=[Phase.explicit, Phase.generate],
            ),
        )
    assert "(1, " in str(info.value)


class Forgetful(Reminders):
    """Cancels its own alarm as soon as it is set: nothing to deliver, nothing lost."""

    async def on_request(self, ctx, payload):
        count = await super().on_request(ctx, payload)
        assert await ctx.cancel_alarm(f"r{count}") is True
        return count


class ForgetfulMachine(RemindersMachine):
    interface = Forgetful


def test_machine_counts_cancelled_alarms_as_delivered():
    run_state_machine_as_test(ForgetfulMachine, settings=FAST)


class CountingMachine(RemindersMachine):
    steps: ClassVar[dict[str, int]] = {}

    def on_response(self, instance_id, payload, response):
        super().on_response(instance_id, payload, response)
        CountingMachine.steps[response.status] = CountingMachine.steps.get(response.status, 0) + 1

    def check_state(self):
        if self.down:
            CountingMachine.steps["down"] = CountingMachine.steps.get("down", 0) + 1


def test_machine_exercises_requests_and_crashes():
    CountingMachine.steps = {}
    run_state_machine_as_test(CountingMachine, settings=settings(FAST, max_examples=30))
    assert CountingMachine.steps.get("ok", 0) > 10
    assert CountingMachine.steps.get("down", 0) > 0
    assert CountingMachine.steps.get("unavailable", 0) > 0
