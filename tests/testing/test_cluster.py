import pytest

from simsi.core.interface import StableInterface
from simsi.testing.cluster import InvariantViolation, SimCluster


class Counter(StableInterface):
    def __init__(self, instance_id):
        super().__init__(instance_id)
        self.count = 0

    async def on_request(self, ctx, payload):
        if payload == "boom":
            raise ValueError("boom")
        if isinstance(payload, (int, float)):
            await ctx.set_alarm("later", ctx.now() + payload, {"count": self.count})
        self.count += 1
        return self.count

    async def on_alarm(self, ctx, alarm_id, meta):
        Counter.fired.append((self.instance_id, ctx.host_id, meta["count"]))


Counter.fired = []


@pytest.fixture(autouse=True)
def _reset():
    Counter.fired = []


def test_request_returns_handler_value():
    cluster = SimCluster(Counter, seed=3)
    assert cluster.request("a").value == 1
    response = cluster.request("a")
    assert response.ok
    assert response.value == 2
    assert response.incarnation == f"{cluster.owner('a')}#0"


def test_handler_error_is_reported():
    cluster = SimCluster(Counter)
    response = cluster.request("a", "boom")
    assert response.status == "handler_error"
    assert isinstance(response.error, ValueError)


def test_crashed_owner_is_unavailable_until_restart():
    cluster = SimCluster(Counter)
    owner = cluster.owner("a")
    assert cluster.request("a").value == 1
    cluster.crash(owner)
    assert cluster.request("a").status == "unavailable"
    cluster.restart(owner)
    response = cluster.request("a")
    assert response.value == 1
    assert response.incarnation == f"{owner}#1"


def test_alarm_survives_crash_and_fires_after_restart():
    cluster = SimCluster(Counter)
    owner = cluster.owner("a")
    cluster.request("a", 20)
    cluster.crash(owner)
    cluster.advance(60)
    assert Counter.fired == []
    assert cluster.stored_alarms() == 1
    cluster.restart(owner)
    cluster.drain(30)
    assert Counter.fired == [("a", owner, 0)]
    assert cluster.stored_alarms() == 0
    checks = cluster.check()
    assert checks.alarms.done == 1


def test_duplicate_identity_is_reported():
    cluster = SimCluster(Counter)
    owner = cluster.owner("a")
    cluster.request("a")
    cluster.world.duplicate_host(owner, 0.0, 0.0)
    cluster.settle()
    for _ in range(20):
        cluster.request("a")
    # Requests go to the oldest process; reach the new one directly.
    newest = cluster.world.hosts[owner].live()[-1]
    newest.runtime.spawn(newest.manager.request("a", None), name="direct")
    cluster.advance(1)
    with pytest.raises(InvariantViolation, match="single instance violated: instance 'a'"):
        cluster.check(alarms=False)


def test_advance_rejects_negative_time():
    cluster = SimCluster(Counter)
    with pytest.raises(ValueError, match="negative"):
        cluster.advance(-1)


def test_unknown_host_rejected():
    cluster = SimCluster(Counter)
    with pytest.raises(KeyError, match="host-9"):
        cluster.crash("host-9")
