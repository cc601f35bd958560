"""The Runtime contract, checked on AsyncioRuntime and SimRuntime alike."""

import asyncio

import pytest

# Real sleeps on asyncio may end a little early by time.time(), which is not
# the loop's monotonic clock, so elapsed-time checks allow this much slack.
SLACK = 0.002


def test_sleep_advances_now(runtime_harness):
    async def body(rt):
        before = rt.now()
        await rt.sleep(0.02)
        return rt.now() - before

    elapsed = runtime_harness.run(body)
    assert elapsed >= 0.02 - SLACK
    assert elapsed < 1.0


def test_sleep_zero_and_negative_return(runtime_harness):
    async def body(rt):
        before = rt.now()
        await rt.sleep(0)
        await rt.sleep(-5)
        return rt.now() - before

    assert runtime_harness.run(body) < 0.5


def test_now_looks_like_unix_time(runtime_harness):
    async def body(rt):
        return rt.now()

    now = runtime_harness.run(body)
    assert now > 1_600_000_000
    assert now < 5_000_000_000


def test_spawn_starts_tasks_in_order(runtime_harness):
    async def body(rt):
        started = []

        async def record(name):
            started.append(name)
            return name

        tasks = [rt.spawn(record(name), name) for name in ("a", "b", "c")]
        # Spawned tasks run only once the spawner suspends.
        before_await = list(started)
        results = [await task for task in tasks]
        return before_await, started, results

    before_await, started, results = runtime_harness.run(body)
    assert before_await == []
    assert started == ["a", "b", "c"]
    assert results == ["a", "b", "c"]


def test_spawn_interleaves_by_sleep_time(runtime_harness):
    async def body(rt):
        order = []

        async def sleeper(name, seconds):
            await rt.sleep(seconds)
            order.append(name)

        tasks = [
            rt.spawn(sleeper("slow", 0.03), "slow"),
            rt.spawn(sleeper("fast", 0.01), "fast"),
            rt.spawn(sleeper("middle", 0.02), "middle"),
        ]
        for task in tasks:
            await task
        return order

    assert runtime_harness.run(body) == ["fast", "middle", "slow"]


def test_task_done_after_finishing(runtime_harness):
    async def body(rt):
        async def work():
            await rt.sleep(0.01)
            return 42

        task = rt.spawn(work(), "work")
        done_before = task.done()
        result = await task
        return done_before, task.done(), result

    done_before, done_after, result = runtime_harness.run(body)
    assert done_before is False
    assert done_after is True
    assert result == 42


def test_task_exception_propagates(runtime_harness):
    error = ValueError("handler failed")

    async def body(rt):
        async def fail():
            await rt.sleep(0.01)
            raise error

        task = rt.spawn(fail(), "fail")
        with pytest.raises(ValueError) as info:
            await task
        return info.value, task.done()

    raised, done = runtime_harness.run(body)
    assert raised is error
    assert done is True


def test_task_awaited_twice_returns_same(runtime_harness):
    async def body(rt):
        async def work():
            return "once"

        task = rt.spawn(work(), "work")
        return await task, await task

    assert runtime_harness.run(body) == ("once", "once")


def test_event_wakes_all_waiters(runtime_harness):
    async def body(rt):
        event = rt.event()
        woken = []

        async def waiter(name):
            await event.wait()
            woken.append(name)

        tasks = [rt.spawn(waiter(name), name) for name in ("w1", "w2", "w3")]
        await rt.sleep(0.01)
        woken_before_set = list(woken)
        is_set_before = event.is_set()
        event.set()
        for task in tasks:
            await task
        return woken_before_set, is_set_before, event.is_set(), sorted(woken)

    woken_before_set, is_set_before, is_set_after, woken = runtime_harness.run(body)
    assert woken_before_set == []
    assert is_set_before is False
    assert is_set_after is True
    assert woken == ["w1", "w2", "w3"]


def test_event_clear_blocks_new_waiters(runtime_harness):
    async def body(rt):
        event = rt.event()
        event.set()
        await event.wait()
        event.clear()
        cleared = event.is_set()
        waiter = rt.spawn(event.wait(), "waiter")
        await rt.sleep(0.01)
        blocked = not waiter.done()
        event.set()
        await waiter
        return cleared, blocked, waiter.done()

    cleared, blocked, done = runtime_harness.run(body)
    assert cleared is False
    assert blocked is True
    assert done is True


def test_lock_grants_in_request_order(runtime_harness):
    async def body(rt):
        lock = rt.lock()
        order = []

        async def contender(name):
            async with lock:
                order.append(name)
                await rt.sleep(0.001)

        async with lock:
            locked_inside = lock.locked()
            tasks = [rt.spawn(contender(f"c{i}"), f"c{i}") for i in range(4)]
            await rt.sleep(0.01)
        # The releasing holder requests the lock again at once and must queue behind the waiters.
        async with lock:
            order.append("holder-again")
        for task in tasks:
            await task
        return locked_inside, order, lock.locked()

    locked_inside, order, locked_after = runtime_harness.run(body)
    assert locked_inside is True
    assert order == ["c0", "c1", "c2", "c3", "holder-again"]
    assert locked_after is False


def test_lock_cancelled_waiter_leaves_queue(runtime_harness):
    async def body(rt):
        lock = rt.lock()
        order = []

        async def contender(name):
            async with lock:
                order.append(name)

        async with lock:
            first = rt.spawn(contender("first"), "first")
            second = rt.spawn(contender("second"), "second")
            await rt.sleep(0.01)
            first.cancel()
            await rt.sleep(0.01)
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        return order

    assert runtime_harness.run(body) == ["second"]


def test_wait_for_returns_in_time(runtime_harness):
    async def body(rt):
        async def work():
            await rt.sleep(0.01)
            return "done"

        return await rt.wait_for(work(), 1.0)

    assert runtime_harness.run(body) == "done"


def test_wait_for_none_waits(runtime_harness):
    async def body(rt):
        async def work():
            await rt.sleep(0.01)
            return "done"

        return await rt.wait_for(work(), None)

    assert runtime_harness.run(body) == "done"


def test_wait_for_timeout_cancels_inner(runtime_harness):
    async def body(rt):
        seen = []

        async def slow():
            try:
                await rt.sleep(10)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            seen.append("finished")

        before = rt.now()
        with pytest.raises(TimeoutError):
            await rt.wait_for(slow(), 0.02)
        elapsed = rt.now() - before
        seen_at_timeout = list(seen)
        await rt.sleep(0.01)
        return elapsed, seen_at_timeout, seen

    elapsed, seen_at_timeout, seen = runtime_harness.run(body)
    assert elapsed >= 0.02 - SLACK
    assert elapsed < 5
    assert seen_at_timeout == ["cancelled"]
    assert seen == ["cancelled"]


def test_wait_for_timeout_cancels_task(runtime_harness):
    async def body(rt):
        task = rt.spawn(rt.sleep(10), "sleeper")
        with pytest.raises(TimeoutError):
            await rt.wait_for(task, 0.01)
        return task.done()

    assert runtime_harness.run(body) is True


def test_wait_for_inner_error_propagates(runtime_harness):
    async def body(rt):
        async def fail():
            await rt.sleep(0.001)
            raise KeyError("missing")

        with pytest.raises(KeyError, match="missing"):
            await rt.wait_for(fail(), 1.0)

    runtime_harness.run(body)


def test_cancel_raises_at_await(runtime_harness):
    async def body(rt):
        seen = []

        async def sleeper():
            try:
                await rt.sleep(10)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        task = rt.spawn(sleeper(), "sleeper")
        await rt.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen, task.done()

    seen, done = runtime_harness.run(body)
    assert seen == ["cancelled"]
    assert done is True


def test_cancel_before_start_skips_body(runtime_harness):
    async def body(rt):
        ran = []

        async def work():
            ran.append("ran")

        task = rt.spawn(work(), "work")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ran

    assert runtime_harness.run(body) == []


def test_cancel_can_be_caught(runtime_harness):
    async def body(rt):
        async def stubborn():
            try:
                await rt.sleep(10)
            except asyncio.CancelledError:
                return "caught"
            return "slept"

        task = rt.spawn(stubborn(), "stubborn")
        await rt.sleep(0.01)
        task.cancel()
        return await task

    assert runtime_harness.run(body) == "caught"


def test_cancel_reaches_awaited_task(runtime_harness):
    async def body(rt):
        inner = rt.spawn(rt.sleep(10), "inner")

        async def outer():
            await inner

        outer_task = rt.spawn(outer(), "outer")
        await rt.sleep(0.01)
        outer_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer_task
        with pytest.raises(asyncio.CancelledError):
            await inner
        return inner.done()

    assert runtime_harness.run(body) is True


def test_cancel_after_done_is_ignored(runtime_harness):
    async def body(rt):
        async def work():
            return 7

        task = rt.spawn(work(), "work")
        result = await task
        task.cancel()
        return result, await task

    assert runtime_harness.run(body) == (7, 7)


def test_to_thread_returns_result(runtime_harness):
    async def body(rt):
        return await rt.to_thread(lambda a, b: a * b, 6, 7)

    assert runtime_harness.run(body) == 42


def test_random_in_unit_interval(runtime_harness):
    async def body(rt):
        return [rt.random() for _ in range(1000)]

    values = runtime_harness.run(body)
    assert all(0.0 <= value < 1.0 for value in values)
    assert len(set(values)) > 990
    assert 0.4 < sum(values) / len(values) < 0.6
