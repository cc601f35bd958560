"""Alarm delivery, run on both the asyncio and the simulated runtime."""

import pytest

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.alarms import Alarm, DoneReason, to_micros
from simsi.core.errors import (
    ConfigError,
    InvalidAlarmMetaError,
    LifecycleError,
    StoreUnavailableError,
)
from simsi.core.placement import internal_id
from simsi.stores import MemoryAlarmStore
from tests.core.interfaces import (
    GO_ID,
    AlarmInterface,
    Recorder,
    fast_alarms,
    ids_owned_by,
    make_manager,
)


def alarm_manager(rt, store=None, recorder=None, **options):
    return make_manager(
        rt,
        factory=AlarmInterface,
        store=store if store is not None else MemoryAlarmStore(),
        observer=recorder,
        alarm_options=fast_alarms(**options),
    )


def test_alarms_fire_in_time_then_id_order(runtime_harness):
    async def body(rt):
        async with alarm_manager(rt) as manager:
            at = rt.now() + 0.05
            live = await manager._admit(GO_ID)
            live.release()
            for alarm_id in ("b", "c", "a"):
                await manager._set_alarm(live, alarm_id, at, None)
            await manager._set_alarm(live, "z", at - 0.01, None)
            await rt.sleep(0.2)
        assert [f[1] for f in AlarmInterface.fired] == ["z", "a", "b", "c"]

    runtime_harness.run(body)


def test_alarm_never_fires_early(runtime_harness):
    fired_at = []

    class Clocked(AlarmInterface):
        async def on_alarm(self, ctx, alarm_id, meta):
            fired_at.append((ctx.now(), meta["at"]))

    async def body(rt):
        manager = make_manager(
            rt, factory=Clocked, store=MemoryAlarmStore(), alarm_options=fast_alarms()
        )
        async with manager:
            live = await manager._admit(GO_ID)
            live.release()
            for i in range(5):
                at = rt.now() + 0.01 * (i + 1) + 0.0000003
                await manager._set_alarm(live, f"a{i}", at, {"at": at})
            await rt.sleep(0.2)
        assert len(fired_at) == 5
        for now, at in fired_at:
            assert now >= at

    runtime_harness.run(body)


def test_retry_then_succeed(runtime_harness):
    async def body(rt):
        recorder = Recorder()
        store = MemoryAlarmStore()
        async with alarm_manager(rt, store, recorder) as manager:
            await manager.request(
                GO_ID, {"op": "set", "id": "r", "in": 0.01, "meta": {"fail_until": 3}}
            )
            await rt.sleep(0.5)
            shard = manager.placement.shard_of(GO_ID)
            assert await store.get_alarms(shard, internal_id(GO_ID)) == []
        assert [(f[1], f[2]) for f in AlarmInterface.fired] == [("r", 1), ("r", 2), ("r", 3)]
        assert recorder.named("retry") == [("retry", "r", 1), ("retry", "r", 2)]
        assert recorder.named("done") == [("done", "r", "succeeded")]

    runtime_harness.run(body)


def test_attempts_exhausted(runtime_harness):
    async def body(rt):
        recorder = Recorder()
        store = MemoryAlarmStore()
        async with alarm_manager(rt, store, recorder, max_attempts=3) as manager:
            await manager.request(
                GO_ID, {"op": "set", "id": "x", "in": 0.01, "meta": {"fail_until": 99}}
            )
            await rt.sleep(0.5)
            shard = manager.placement.shard_of(GO_ID)
            assert await store.get_alarms(shard, internal_id(GO_ID)) == []
        assert [f[2] for f in AlarmInterface.fired] == [1, 2, 3]
        assert recorder.named("done") == [("done", "x", "attempts_exhausted")]

    runtime_harness.run(body)


def test_attempt_count_is_persisted(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        async with alarm_manager(rt, store, backoff_base=10, backoff_cap=10) as manager:
            await manager.request(
                GO_ID, {"op": "set", "id": "p", "in": 0.01, "meta": {"fail_until": 99}}
            )
            await rt.sleep(0.1)
            shard = manager.placement.shard_of(GO_ID)
            (stored,) = await store.get_alarms(shard, internal_id(GO_ID))
            assert stored.attempt == 1
            assert stored.fires_at > rt.now() + 5

    runtime_harness.run(body)


def test_alarm_reactivates_shut_down_instance(runtime_harness):
    async def body(rt):
        recorder = Recorder()
        async with alarm_manager(rt, recorder=recorder) as manager:
            await manager.request(GO_ID, {"op": "set", "id": "wake", "in": 0.05})
            assert await manager.shutdown_instance(GO_ID) is True
            assert not manager.is_live(GO_ID)
            await rt.sleep(0.2)
            assert manager.is_live(GO_ID)
        assert [f[1] for f in AlarmInterface.fired] == ["wake"]
        assert [e[0] for e in recorder.events if e[0] in ("activated", "deactivated")][:3] == [
            "activated", "deactivated", "activated",
        ]  # fmt: skip

    runtime_harness.run(body)


def test_handler_rearming_its_alarm_is_kept(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        async with alarm_manager(rt, store) as manager:
            await manager.request(
                GO_ID, {"op": "set", "id": "tick", "in": 0.01, "meta": {"rearm": 30}}
            )
            await rt.sleep(0.1)
            shard = manager.placement.shard_of(GO_ID)
            (stored,) = await store.get_alarms(shard, internal_id(GO_ID))
            assert stored.meta == {"rearmed": True}
        assert [f[1] for f in AlarmInterface.fired] == ["tick"]

    runtime_harness.run(body)


def test_cancel_and_list(runtime_harness):
    async def body(rt):
        async with alarm_manager(rt) as manager:
            await manager.request(GO_ID, {"op": "set", "id": "b", "in": 0.05})
            await manager.request(GO_ID, {"op": "set", "id": "a", "in": 0.06})
            assert await manager.request(GO_ID, "list") == [("b", 0), ("a", 0)]
            assert await manager.request(GO_ID, {"op": "cancel", "id": "b"}) is True
            assert await manager.request(GO_ID, {"op": "cancel", "id": "b"}) is False
            await rt.sleep(0.2)
        assert [f[1] for f in AlarmInterface.fired] == ["a"]

    runtime_harness.run(body)


def test_replace_moves_alarm(runtime_harness):
    async def body(rt):
        async with alarm_manager(rt) as manager:
            await manager.request(GO_ID, {"op": "set", "id": "m", "in": 0.02, "meta": 1})
            await manager.request(GO_ID, {"op": "set", "id": "m", "in": 0.08, "meta": 2})
            await rt.sleep(0.05)
            assert AlarmInterface.fired == []
            await rt.sleep(0.1)
        assert [(f[1], f[3]) for f in AlarmInterface.fired] == [("m", 2)]

    runtime_harness.run(body)


def test_invalid_meta_rejected_before_store(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        async with alarm_manager(rt, store) as manager:
            live = await manager._admit(GO_ID)
            live.release()
            with pytest.raises(InvalidAlarmMetaError, match="JSON-serialisable"):
                await manager._set_alarm(live, "bad", rt.now() + 1, {"obj": object()})
            with pytest.raises(InvalidAlarmMetaError, match="above the limit"):
                await manager._set_alarm(live, "big", rt.now() + 1, "x" * 70_000)
            with pytest.raises(ConfigError, match="finite"):
                await manager._set_alarm(live, "nan", float("nan"), None)
            with pytest.raises(ConfigError, match="non-empty"):
                await manager._set_alarm(live, "", rt.now(), None)
            with pytest.raises(ConfigError, match="not a delay"):
                await manager._set_alarm(live, "negative", -5.0, None)
            deep: list = []
            inner = deep
            for _ in range(5000):
                inner.append([])
                inner = inner[0]
            with pytest.raises(InvalidAlarmMetaError, match="nested too deeply"):
                await manager._set_alarm(live, "deep", rt.now() + 1, deep)
            assert await store.get_alarms(live.shard, live.internal_id) == []

    runtime_harness.run(body)


def test_alarms_without_store_rejected(runtime_harness):
    async def body(rt):
        async with make_manager(rt, factory=AlarmInterface) as manager:
            with pytest.raises(Exception) as info:
                await manager.request(GO_ID, {"op": "set", "id": "a", "in": 1})
            assert isinstance(info.value.__cause__, LifecycleError)
            assert "no alarm store" in str(info.value.__cause__)

    runtime_harness.run(body)


def test_one_instance_alarms_never_overlap(runtime_harness):
    running = []
    overlaps = []

    class Slow(AlarmInterface):
        reentrant = True

        async def on_alarm(self, ctx, alarm_id, meta):
            if running:
                overlaps.append(alarm_id)
            running.append(alarm_id)
            await ctx.sleep(0.02)
            running.remove(alarm_id)
            AlarmInterface.fired.append((self.instance_id, alarm_id, ctx.attempt, meta))

    async def body(rt):
        manager = make_manager(
            rt, factory=Slow, store=MemoryAlarmStore(), alarm_options=fast_alarms()
        )
        async with manager:
            live = await manager._admit(GO_ID)
            live.release()
            at = rt.now() + 0.01
            for i in range(4):
                await manager._set_alarm(live, f"a{i}", at, None)
            await rt.sleep(0.3)
        assert overlaps == []
        assert [f[1] for f in AlarmInterface.fired] == ["a0", "a1", "a2", "a3"]

    runtime_harness.run(body)


def test_stored_alarms_load_on_start(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        ids = ids_owned_by("host-0", 3)
        now = rt.now()
        for n, instance_id in enumerate(ids):
            internal = internal_id(instance_id)
            manager_probe = make_manager(rt)
            shard = manager_probe.placement.shard_of(instance_id)
            alarm = Alarm(
                instance_id,
                internal,
                "boot",
                to_micros(now + 0.02 + n * 0.01),
                {"n": n},
                revision=1,
            )
            await store.set_alarm(shard, alarm)
        async with alarm_manager(rt, store) as manager:
            await manager.wait_ready()
            assert manager.ready
            await rt.sleep(0.2)
        assert [(f[0], f[3]) for f in AlarmInterface.fired] == [
            (ids[n], {"n": n}) for n in range(3)
        ]

    runtime_harness.run(body)


class FlakyStore(MemoryAlarmStore):
    """Fails the first ``failures`` mark_alarm_done calls."""

    def __init__(self, failures):
        super().__init__()
        self.failures = failures

    async def mark_alarm_done(self, shard, internal_id, alarm_id, reason, *, if_revision=None):
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("store down")
        return await super().mark_alarm_done(
            shard, internal_id, alarm_id, reason, if_revision=if_revision
        )


def test_store_failure_on_done_redelivers(runtime_harness):
    async def body(rt):
        store = FlakyStore(failures=2)
        recorder = Recorder()
        async with alarm_manager(rt, store, recorder, store_attempts=2) as manager:
            await manager.request(GO_ID, {"op": "set", "id": "d", "in": 0.01})
            await rt.sleep(0.5)
            shard = manager.placement.shard_of(GO_ID)
            assert await store.get_alarms(shard, internal_id(GO_ID)) == []
        # At-least-once: the first completion failed twice, so the alarm fired again.
        assert [f[1] for f in AlarmInterface.fired] == ["d", "d"]
        assert recorder.named("done") == [("done", "d", DoneReason.SUCCEEDED.value)]

    runtime_harness.run(body)


def test_bounded_window_over_many_alarms(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        ids = ids_owned_by("host-0", 40)
        now = rt.now()
        probe = make_manager(rt)
        for i in range(2000):
            instance_id = ids[i % len(ids)]
            alarm = Alarm(
                instance_id,
                internal_id(instance_id),
                f"a{i:05}",
                to_micros(now + 0.01 + i * 0.0001),
                revision=1,
            )
            await store.set_alarm(probe.placement.shard_of(instance_id), alarm)
        manager = alarm_manager(rt, store, page_size=8, load_concurrency=2, max_concurrent=4)
        async with manager:
            await rt.sleep(1.0)
            engine = manager.alarms
            assert engine.peak_held <= engine.window_limit
            assert engine.peak_loading <= 2
        assert len(AlarmInterface.fired) == 2000
        assert len({f[1] for f in AlarmInterface.fired}) == 2000

    runtime_harness.run(body)


def test_options_validated():
    with pytest.raises(ConfigError, match="max_attempts"):
        AlarmOptions(max_attempts=0)
    with pytest.raises(ConfigError, match="jitter"):
        AlarmOptions(jitter=1.5)
    with pytest.raises(ConfigError, match="backoff_base"):
        AlarmOptions(backoff_base=5, backoff_cap=1)


def test_retry_delay_doubles_to_cap():
    options = AlarmOptions(backoff_base=1, backoff_cap=5, jitter=0.5)
    assert [options.retry_delay(n, 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert options.retry_delay(2, 1.0) == 1.0


def test_resync_finds_alarm_written_by_another_process(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        resyncing = alarm_manager(rt, store, resync_interval=0.05)
        plain = alarm_manager(rt, store)
        other = alarm_manager(rt, store)
        async with resyncing, plain:
            await resyncing.wait_ready()
            await plain.wait_ready()
            # A second process of the same host writes an alarm, then stops before it is due.
            await other.start()
            await other.request(GO_ID, {"op": "set", "id": "stray", "in": 0.2})
            await other.close()
            await rt.sleep(0.5)
        # Only the resyncing manager saw and delivered it; the plain one never loaded it.
        assert [f[1] for f in AlarmInterface.fired] == ["stray"]
        shard = resyncing.placement.shard_of(GO_ID)
        assert await store.get_alarms(shard, internal_id(GO_ID)) == []

    runtime_harness.run(body)


def test_resync_does_not_redeliver_done_alarms(runtime_harness):
    async def body(rt):
        store = MemoryAlarmStore()
        async with alarm_manager(rt, store, resync_interval=0.01) as manager:
            for i in range(5):
                await manager.request(GO_ID, {"op": "set", "id": f"a{i}", "in": 0.02 * (i + 1)})
            await rt.sleep(0.5)
        assert sorted(f[1] for f in AlarmInterface.fired) == ["a0", "a1", "a2", "a3", "a4"]

    runtime_harness.run(body)


def test_resync_interval_validated():
    with pytest.raises(ConfigError, match="resync_interval must be a positive number"):
        AlarmOptions(resync_interval=0)
