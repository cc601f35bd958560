"""SimRuntime behaviour that only the simulator has: foreign awaits, crashes, clocks, ordering."""

import asyncio
import gc
import logging
import random
import warnings

import pytest
import simpy

from simsi.core.errors import DeadIncarnationError, RuntimeMisuseError
from simsi.core.runtime import Task
from simsi.sim import DEFAULT_EPOCH, HostClock, SimRuntime, wait_event


def make_runtime(env=None, clock=None, name="host-0#1", seed=7):
    env = env if env is not None else simpy.Environment()
    clock = clock if clock is not None else HostClock()
    return SimRuntime(env, clock, random.Random(seed), name)


def run_task(runtime, coro, name="main"):
    task = runtime.spawn(coro, name)
    runtime.env.run(until=task._process)
    return task.result()


def test_runtime_has_protocol_members():
    runtime = make_runtime()
    task = runtime.spawn(runtime.sleep(0), "t")
    runtime.env.run()
    assert isinstance(task, Task)
    for name in ("now", "sleep", "spawn", "event", "lock", "wait_for", "to_thread", "random"):
        assert callable(getattr(runtime, name)), name


# -- foreign awaitables ----------------------------------------------------------------------


def test_foreign_none_names_task():
    runtime = make_runtime()

    async def handler():
        with pytest.raises(RuntimeMisuseError) as info:
            await asyncio.sleep(0)
        return str(info.value)

    message = run_task(runtime, handler(), name="on_request:cart-1")
    assert "'on_request:cart-1'" in message
    assert "'host-0#1'" in message
    assert "None" in message
    assert "runtime.sleep" in message


def test_foreign_future_names_object():
    runtime = make_runtime()
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()

        async def handler():
            with pytest.raises(RuntimeMisuseError) as info:
                await future
            return str(info.value)

        message = run_task(runtime, handler(), name="on_alarm")
    finally:
        loop.close()
    assert "'on_alarm'" in message
    assert "asyncio" in message
    assert "Future" in message


def test_foreign_error_uncaught_fails_task():
    runtime = make_runtime()

    async def handler():
        await asyncio.sleep(0)

    with pytest.raises(RuntimeMisuseError, match="'careless'"):
        run_task(runtime, handler(), name="careless")


def test_spawn_rejects_coroutine_function():
    runtime = make_runtime()

    async def work():
        return 1

    with pytest.raises(TypeError, match="call the coroutine function first"):
        runtime.spawn(work, "work")


def test_task_awaiting_itself_raises():
    runtime = make_runtime()
    holder = {}

    async def selfish():
        await runtime.sleep(0)
        await holder["task"]

    holder["task"] = runtime.spawn(selfish(), "selfish")
    runtime.env.run()
    with pytest.raises(RuntimeError, match="cannot await itself"):
        holder["task"].result()


# -- kill ------------------------------------------------------------------------------------


def test_kill_drops_pending_coroutines():
    runtime = make_runtime()
    log = []

    async def worker(name):
        log.append(f"{name} start")
        await runtime.sleep(10)
        log.append(f"{name} resumed")

    tasks = [runtime.spawn(worker(f"w{i}"), f"w{i}") for i in range(3)]
    runtime.env.run(until=1)
    dropped = runtime.kill()
    runtime.env.run()
    assert dropped == 3
    assert runtime.alive is False
    assert log == ["w0 start", "w1 start", "w2 start"]
    assert all(task.done() for task in tasks)


def test_kill_drops_unstarted_task_without_running():
    runtime = make_runtime()
    ran = []

    async def work():
        ran.append("ran")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = runtime.spawn(work(), "work")
        runtime.kill()
        runtime.env.run()
        done = task.done()
        del task
        gc.collect()
    assert ran == []
    assert done is True
    assert [str(w.message) for w in caught] == []


def test_kill_finally_effects_rejected():
    runtime = make_runtime()
    seen = []

    async def worker():
        try:
            await runtime.sleep(10)
        finally:
            seen.append(("alive in finally", runtime.alive))
            try:
                runtime.check_alive("store write to shard 3")
            except DeadIncarnationError as exc:
                seen.append(("rejected", str(exc)))

    runtime.spawn(worker(), "worker")
    runtime.env.run(until=1)
    runtime.kill()
    assert seen[0] == ("alive in finally", False)
    assert seen[1][0] == "rejected"
    assert "'host-0#1'" in seen[1][1]
    assert "store write to shard 3" in seen[1][1]


def test_kill_await_in_finally_fails_quietly():
    runtime = make_runtime()
    log = []

    async def worker():
        try:
            await runtime.sleep(10)
        finally:
            await runtime.sleep(1)
            log.append("after await in finally")

    runtime.spawn(worker(), "worker")
    runtime.env.run(until=1)
    runtime.kill()
    runtime.env.run()
    assert log == []


def test_spawn_after_kill_raises():
    runtime = make_runtime()
    runtime.kill()

    async def work():
        return 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DeadIncarnationError, match="spawning task 'late'") as info:
            runtime.spawn(work(), "late")
        # The traceback keeps the coroutine's frame alive; drop it before collecting.
        message = str(info.value)
        del info
        gc.collect()
    assert "'host-0#1'" in message
    assert [str(w.message) for w in caught] == []


def test_check_alive_names_runtime_and_effect():
    runtime = make_runtime(name="host-2#5")
    runtime.check_alive("network send to host-1")
    runtime.kill()
    with pytest.raises(DeadIncarnationError) as info:
        runtime.check_alive("network send to host-1")
    assert "'host-2#5'" in str(info.value)
    assert "network send to host-1" in str(info.value)


def test_to_thread_after_kill_raises():
    runtime = make_runtime()
    runtime.kill()
    coro = runtime.to_thread(print, "never")
    with pytest.raises(DeadIncarnationError):
        coro.send(None)


def test_awaiting_dropped_task_raises():
    env = simpy.Environment()
    crashed = make_runtime(env, name="host-0#1")
    observer = make_runtime(env, name="observer")
    victim = crashed.spawn(crashed.sleep(10), "victim")

    async def watch():
        with pytest.raises(DeadIncarnationError, match="'victim'"):
            await victim
        return env.now

    watcher = observer.spawn(watch(), "watch")
    env.run(until=1)
    crashed.kill()
    env.run(until=watcher._process)
    assert watcher.result() == 1


def test_kill_releases_lock_waiters():
    runtime = make_runtime()
    lock = runtime.lock()

    async def holder():
        async with lock:
            await runtime.sleep(10)

    async def waiter():
        async with lock:
            pass

    runtime.spawn(holder(), "holder")
    runtime.spawn(waiter(), "waiter")
    runtime.env.run(until=1)
    assert runtime.kill() == 2
    runtime.env.run()
    assert lock.locked() is False


def test_self_kill_drops_at_next_await():
    runtime = make_runtime()
    log = []

    async def suicidal():
        runtime.kill()
        log.append("still running after kill")
        await runtime.sleep(1)
        log.append("resumed")

    task = runtime.spawn(suicidal(), "suicidal")
    runtime.env.run()
    assert log == ["still running after kill"]
    with pytest.raises(DeadIncarnationError):
        task.result()


def test_kill_twice_returns_zero():
    runtime = make_runtime()
    runtime.spawn(runtime.sleep(5), "sleeper")
    assert runtime.kill() == 1
    assert runtime.kill() == 0


def test_cancel_after_kill_is_ignored():
    runtime = make_runtime()
    task = runtime.spawn(runtime.sleep(5), "sleeper")
    runtime.env.run(until=1)
    runtime.kill()
    assert task.cancel() is False


# -- clocks ----------------------------------------------------------------------------------


def test_now_follows_offset_and_drift():
    clock = HostClock(offset=2.5, drift_ppm=100.0)
    runtime = make_runtime(clock=clock)
    runtime.env.run(until=1000)
    assert runtime.now() == pytest.approx(DEFAULT_EPOCH + 2.5 + 1000 * 1.0001, abs=1e-6)


def test_sleep_uses_host_seconds():
    clock = HostClock(drift_ppm=100_000.0)
    runtime = make_runtime(clock=clock)

    async def body():
        host_before = runtime.now()
        true_before = runtime.env.now
        await runtime.sleep(11)
        return runtime.now() - host_before, runtime.env.now - true_before

    host_elapsed, true_elapsed = run_task(runtime, body())
    assert host_elapsed == pytest.approx(11.0)
    assert true_elapsed == pytest.approx(10.0)


def test_step_does_not_shorten_sleep():
    clock = HostClock()
    runtime = make_runtime(clock=clock)

    async def sleeper():
        await runtime.sleep(10)
        return runtime.env.now, runtime.now()

    async def stepper():
        await runtime.sleep(3)
        clock.step(100.0, at=runtime.env.now)

    runtime.spawn(stepper(), "stepper")
    true_end, host_end = run_task(runtime, sleeper(), "sleeper")
    assert true_end == pytest.approx(10.0)
    assert host_end == pytest.approx(DEFAULT_EPOCH + 110.0)


def test_backward_step_moves_now_back():
    clock = HostClock()
    runtime = make_runtime(clock=clock)
    runtime.env.run(until=50)
    before = runtime.now()
    clock.step(-20.0, at=runtime.env.now)
    assert runtime.now() == pytest.approx(before - 20.0)


def test_set_offset_changes_now():
    clock = HostClock(offset=1.0)
    runtime = make_runtime(clock=clock)
    runtime.env.run(until=10)
    clock.set_offset(-4.0, at=runtime.env.now)
    assert runtime.now() == pytest.approx(DEFAULT_EPOCH - 4.0 + 10.0)


def test_drift_change_keeps_now_continuous():
    clock = HostClock()
    runtime = make_runtime(clock=clock)
    runtime.env.run(until=100)
    before = runtime.now()
    clock.set_drift_ppm(-500_000.0, at=runtime.env.now)
    assert runtime.now() == pytest.approx(before)
    runtime.env.run(until=110)
    assert runtime.now() == pytest.approx(before + 5.0)


def test_wait_for_timeout_uses_host_seconds():
    clock = HostClock(drift_ppm=-500_000.0)
    runtime = make_runtime(clock=clock)

    async def body():
        with pytest.raises(TimeoutError, match="within 3 s"):
            await runtime.wait_for(runtime.sleep(100), 3)
        return runtime.env.now

    assert run_task(runtime, body()) == pytest.approx(6.0)


def test_wait_for_infinite_timeout_leaves_no_timer():
    runtime = make_runtime()

    async def body():
        return await runtime.wait_for(runtime.sleep(2), float("inf"))

    run_task(runtime, body())
    runtime.env.run()
    assert runtime.env.now == 2


# -- ordering, cancellation details and counters --------------------------------------------


def interleaving_trace(seed):
    env = simpy.Environment()
    runtime = make_runtime(env, seed=seed)
    lock = runtime.lock()
    event = runtime.event()
    trace = []

    async def worker(name):
        for step in range(5):
            await runtime.sleep(runtime.random() * 0.01)
            async with lock:
                trace.append((name, step, env.now))
                await runtime.sleep(0)
        if name == "w3":
            event.set()

    async def waiter(name):
        await event.wait()
        trace.append((name, "woke", env.now))

    for i in range(5):
        runtime.spawn(worker(f"w{i}"), f"w{i}")
        runtime.spawn(waiter(f"v{i}"), f"v{i}")
    env.run()
    return trace, runtime.hops


def test_interleaving_same_every_run():
    first_trace, first_hops = interleaving_trace(seed=11)
    second_trace, second_hops = interleaving_trace(seed=11)
    assert first_trace == second_trace
    assert first_hops == second_hops
    assert len(first_trace) == 30


def test_same_time_ties_keep_schedule_order():
    env = simpy.Environment()
    runtime = make_runtime(env)
    order = []

    def plain_process():
        yield env.timeout(1)
        order.append("simpy-first")

    async def coroutine():
        await runtime.sleep(1)
        order.append("runtime")

    def late_process():
        yield env.timeout(1)
        order.append("simpy-last")

    env.process(plain_process())
    runtime.spawn(coroutine(), "coroutine")
    env.process(late_process())
    env.run()
    assert order == ["simpy-first", "runtime", "simpy-last"]


def test_self_cancel_lands_at_next_await():
    runtime = make_runtime()
    log = []
    holder = {}

    async def self_cancelling():
        holder["task"].cancel()
        log.append("still running")
        try:
            await runtime.sleep(5)
        except asyncio.CancelledError:
            log.append(("cancelled at", runtime.env.now))
            raise

    holder["task"] = runtime.spawn(self_cancelling(), "self")
    runtime.env.run()
    assert log == ["still running", ("cancelled at", 0)]
    assert holder["task"].cancelled()


def test_cancel_replaces_value_already_due():
    runtime = make_runtime()
    event = runtime.event()
    log = []

    async def waiter():
        try:
            await event.wait()
            log.append("woke")
        except asyncio.CancelledError:
            log.append("cancelled")

    async def setter_then_cancel(task):
        event.set()
        task.cancel()

    task = runtime.spawn(waiter(), "waiter")
    runtime.env.run(until=1)
    runtime.spawn(setter_then_cancel(task), "setter")
    runtime.env.run()
    assert log == ["cancelled"]


def test_hops_count_resumptions():
    runtime = make_runtime()

    async def loop():
        for _ in range(10):
            await runtime.sleep(0)

    run_task(runtime, loop())
    assert runtime.hops == 11


def test_unretrieved_exception_logged(caplog):
    runtime = make_runtime()

    async def fail():
        raise ValueError("nobody looked")

    runtime.spawn(fail(), "orphan")
    with caplog.at_level(logging.ERROR, logger="simsi.sim.runtime"):
        runtime.env.run()
        gc.collect()
    assert "'orphan'" in caplog.text
    assert "nobody looked" in caplog.text


def test_wait_event_returns_value():
    runtime = make_runtime()

    async def body():
        return await wait_event(runtime.env.timeout(2, value="payload"))

    assert run_task(runtime, body()) == "payload"
    assert runtime.env.now == 2


def test_wait_event_failure_raises():
    runtime = make_runtime()
    failing = runtime.env.event()
    original = ConnectionError("link down")

    async def body():
        try:
            await wait_event(failing)
        except ConnectionError as exc:
            return exc

    task = runtime.spawn(body(), "body")
    runtime.env.run(until=1)
    failing.fail(original)
    runtime.env.run()
    raised = task.result()
    assert str(raised) == "link down"
    assert raised.__cause__ is original


def test_kill_while_target_is_processed():
    env = simpy.Environment()
    killer_runtime = make_runtime(env, name="fault-injector")
    victim_runtime = make_runtime(env, name="host-1#1")
    shared = env.event()
    log = []

    async def killer():
        await wait_event(shared)
        victim_runtime.kill()

    async def victim():
        await wait_event(shared)
        log.append("victim resumed")

    # The killer's callback on the shared event runs first, and the victim's
    # resumption is already queued in the same step when the kill happens.
    killer_runtime.spawn(killer(), "killer")
    victim_task = victim_runtime.spawn(victim(), "victim")
    env.run(until=1)
    shared.succeed("go")
    env.run()
    assert log == []
    with pytest.raises(DeadIncarnationError):
        victim_task.result()


def test_kill_while_failed_target_is_processed():
    env = simpy.Environment()
    killer_runtime = make_runtime(env, name="fault-injector")
    victim_runtime = make_runtime(env, name="host-1#1")
    shared = env.event()
    log = []

    async def killer():
        with pytest.raises(ConnectionError):
            await wait_event(shared)
        victim_runtime.kill()

    async def victim():
        try:
            await wait_event(shared)
        except ConnectionError:
            log.append("victim handled the failure")

    killer_runtime.spawn(killer(), "killer")
    victim_task = victim_runtime.spawn(victim(), "victim")
    env.run(until=1)
    shared.fail(ConnectionError("link down"))
    env.run()
    assert log == []
    assert victim_task.done()
