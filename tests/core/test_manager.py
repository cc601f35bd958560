"""The Go library's behaviour, run on both the asyncio and the simulated runtime."""

import pytest

from simsi.core.connection import CLOSE_GOING_AWAY, ConnectionState
from simsi.core.errors import (
    ConfigError,
    ConnectionClosedError,
    ConnectionRejectedError,
    HandlerError,
    HandlerTimeoutError,
    LifecycleError,
    ManagerClosedError,
    NotOwnerError,
)
from simsi.core.manager import InterfaceManager, ManagerState
from simsi.core.placement import internal_id
from tests.core.interfaces import GO_ID, EchoInterface, Recorder, ids_owned_by, make_manager


def test_request_on_owner(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            assert await manager.request(GO_ID, "internal") == internal_id(GO_ID)
            assert await manager.request(GO_ID, {"x": 1}) == {"x": 1}

    runtime_harness.run(body)


def test_request_on_non_owner(runtime_harness):
    async def body(rt):
        async with make_manager(rt, host="host-1") as manager:
            with pytest.raises(NotOwnerError) as info:
                await manager.request(GO_ID, None)
            assert info.value.owner == "host-0"
            assert info.value.host_id == "host-1"
            assert info.value.shard == manager.placement.shard_of(GO_ID)
            assert manager.live_instances == 0

    runtime_harness.run(body)


def test_both_hosts_agree_on_owner(runtime_harness):
    async def body(rt):
        first = make_manager(rt, host="host-0")
        second = make_manager(rt, host="host-1")
        assert first.owner(GO_ID) == second.owner(GO_ID) == "host-0"

    runtime_harness.run(body)


def test_handler_error_wraps_cause(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            with pytest.raises(HandlerError) as info:
                await manager.request(GO_ID, "err")
            assert isinstance(info.value.__cause__, ValueError)
            assert str(info.value.__cause__) == "test error"
            assert info.value.instance_id == GO_ID
            assert info.value.handler == "on_request"
            # The instance survives a handler error.
            assert await manager.request(GO_ID, "count") == 2

    runtime_harness.run(body)


def test_request_before_start_rejected(runtime_harness):
    async def body(rt):
        manager = make_manager(rt)
        with pytest.raises(LifecycleError, match="not started"):
            await manager.request(GO_ID, None)

    runtime_harness.run(body)


def test_request_after_close_rejected(runtime_harness):
    async def body(rt):
        manager = make_manager(rt)
        await manager.start()
        await manager.close()
        assert manager.state is ManagerState.CLOSED
        with pytest.raises(ManagerClosedError):
            await manager.request(GO_ID, None)

    runtime_harness.run(body)


def test_start_twice_rejected(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            with pytest.raises(LifecycleError, match="start\\(\\) runs once"):
                await manager.start()

    runtime_harness.run(body)


def test_unknown_host_rejected(runtime_harness):
    async def body(rt):
        with pytest.raises(ConfigError, match="'host-7'"):
            InterfaceManager("host-7", "host-{0..1}", 8, EchoInterface, runtime=rt)

    runtime_harness.run(body)


def test_concurrent_first_requests_activate_once(runtime_harness):
    created = []

    def factory(instance_id):
        created.append(instance_id)
        return EchoInterface(instance_id)

    async def body(rt):
        async with make_manager(rt, factory=factory) as manager:
            tasks = [rt.spawn(manager.request(GO_ID, "count"), name=f"r{i}") for i in range(50)]
            results = [await task for task in tasks]
            assert sorted(results) == list(range(1, 51))
            assert created == [GO_ID]
            assert manager.live_instances == 1

    runtime_harness.run(body)


def test_requests_take_turns_in_arrival_order(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            tasks = [
                rt.spawn(manager.request(GO_ID, {"sleep": 0.01 * (3 - i), "tag": i}), name=f"r{i}")
                for i in range(3)
            ]
            assert [await task for task in tasks] == [0, 1, 2]
        assert EchoInterface.log == [
            ("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2),
        ]  # fmt: skip

    runtime_harness.run(body)


class Reentrant(EchoInterface):
    reentrant = True


def test_reentrant_class_interleaves(runtime_harness):
    async def body(rt):
        async with make_manager(rt, factory=Reentrant) as manager:
            tasks = [
                rt.spawn(manager.request(GO_ID, {"sleep": 0.01 * (2 - i), "tag": i}), name=f"r{i}")
                for i in range(2)
            ]
            for task in tasks:
                await task
        assert EchoInterface.log == [("start", 0), ("start", 1), ("end", 1), ("end", 0)]

    runtime_harness.run(body)


def test_request_timeout_raises_handler_timeout(runtime_harness):
    async def body(rt):
        async with make_manager(rt, request_timeout=0.01) as manager:
            with pytest.raises(HandlerTimeoutError) as info:
                await manager.request(GO_ID, {"sleep": 1, "tag": "slow"})
            assert isinstance(info.value.__cause__, TimeoutError)
            assert info.value.timeout == 0.01
            assert "did not finish within 0.01 s" in str(info.value)
            # The instance takes the next request once the timed-out one was cancelled.
            assert await manager.request(GO_ID, "internal") == internal_id(GO_ID)

    runtime_harness.run(body)


class RaisesTimeout(EchoInterface):
    async def on_request(self, ctx, payload):
        raise TimeoutError("upstream call timed out")


def test_handler_raising_timeout_is_not_a_timeout(runtime_harness):
    async def body(rt):
        async with make_manager(rt, factory=RaisesTimeout, request_timeout=5) as manager:
            with pytest.raises(HandlerError) as info:
                await manager.request(GO_ID, None)
            assert not isinstance(info.value, HandlerTimeoutError)
            assert str(info.value.__cause__) == "upstream call timed out"

    runtime_harness.run(body)


def test_connect_unhandled_rejected(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            with pytest.raises(
                ConnectionRejectedError, match="neither accepted nor rejected"
            ) as info:
                await manager.connect(GO_ID)
            assert info.value.unhandled is True

    runtime_harness.run(body)


def test_connect_rejected_with_reason(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            with pytest.raises(ConnectionRejectedError) as info:
                await manager.connect(GO_ID, {"instruction": "reject"})
            assert info.value.reason == "test rejection"
            assert info.value.unhandled is False

    runtime_harness.run(body)


def test_connect_handler_error_wrapped(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            with pytest.raises(HandlerError) as info:
                await manager.connect(GO_ID, {"instruction": "raise"})
            assert info.value.handler == "on_connect"

    runtime_harness.run(body)


def test_connect_on_non_owner(runtime_harness):
    async def body(rt):
        async with make_manager(rt, host="host-1") as manager:
            with pytest.raises(NotOwnerError):
                await manager.connect(GO_ID, {"instruction": "accept"})

    runtime_harness.run(body)


def test_connect_accept_exchange_messages(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            connection = await manager.connect(GO_ID, {"instruction": "accept"})
            assert connection.meta == {"instruction": "accept"}
            await connection.send("one")
            await connection.send("two")
            assert await connection.receive() == "thanks for one"
            assert await connection.receive() == "thanks for two"

    runtime_harness.run(body)


def test_caller_close_closes_both_ends(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            connection = await manager.connect(GO_ID, {"instruction": "accept"})
            closes = []
            connection.on_close(lambda code, reason: closes.append((code, reason)))
            await connection.close(reason="caller done")
            await connection.close(reason="again")
            assert closes == [(1000, "caller done")]
            assert EchoInterface.log == [("closed", "caller done")]
            assert connection.state is ConnectionState.CLOSED
            with pytest.raises(ConnectionClosedError):
                await connection.send("late")

    runtime_harness.run(body)


def test_instance_close_reaches_caller(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            connection = await manager.connect(GO_ID, {"instruction": "accept"})
            closes = []
            connection.on_close(lambda code, reason: closes.append(reason))
            await connection.send("close")
            with pytest.raises(ConnectionClosedError):
                await connection.receive()
            assert closes == ["instance closed it"]
            with pytest.raises(ConnectionClosedError):
                await connection.send("after close")

    runtime_harness.run(body)


def test_connection_iteration_ends_on_close(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            connection = await manager.connect(GO_ID, {"instruction": "accept"})
            await connection.send("a")
            await connection.send("close")
            assert [message async for message in connection] == ["thanks for a"]

    runtime_harness.run(body)


def test_shutdown_closes_connections_and_drops(runtime_harness):
    async def body(rt):
        recorder = Recorder()
        async with make_manager(rt, observer=recorder) as manager:
            connection = await manager.connect(GO_ID, {"instruction": "accept"})
            closes = []
            connection.on_close(lambda code, reason: closes.append(code))
            assert await manager.shutdown_instance(GO_ID) is True
            assert closes == [CLOSE_GOING_AWAY]
            assert connection.closed
            assert not manager.is_live(GO_ID)
            assert await manager.shutdown_instance(GO_ID) is False
            assert recorder.named("deactivated") == [("deactivated", GO_ID)]

    runtime_harness.run(body)


def test_shutdown_waits_for_running_handler(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            slow = rt.spawn(manager.request(GO_ID, {"sleep": 0.05, "tag": "slow"}), name="slow")
            await rt.sleep(0.01)
            await manager.shutdown_instance(GO_ID)
            assert slow.done()
            assert await slow == "slow"
            assert EchoInterface.log == [("start", "slow"), ("end", "slow")]

    runtime_harness.run(body)


def test_request_during_shutdown_reactivates(runtime_harness):
    created = []

    def factory(instance_id):
        created.append(instance_id)
        return EchoInterface(instance_id)

    async def body(rt):
        async with make_manager(rt, factory=factory) as manager:
            rt.spawn(manager.request(GO_ID, {"sleep": 0.05, "tag": "slow"}), name="slow")
            await rt.sleep(0.01)
            shutdown = rt.spawn(manager.shutdown_instance(GO_ID), name="shutdown")
            await rt.sleep(0)
            assert await manager.request(GO_ID, "count") == 1
            assert await shutdown is True
            assert created == [GO_ID, GO_ID]

    runtime_harness.run(body)


def test_close_drains_every_instance(runtime_harness):
    async def body(rt):
        recorder = Recorder()
        manager = make_manager(rt, observer=recorder)
        await manager.start()
        ids = ids_owned_by("host-0", 5)
        for instance_id in ids:
            await manager.request(instance_id, None)
        slow = rt.spawn(manager.request(ids[0], {"sleep": 0.05, "tag": "slow"}), name="slow")
        await rt.sleep(0.01)
        await manager.close()
        assert slow.done()
        assert manager.live_instances == 0
        assert sorted(e[1] for e in recorder.named("deactivated")) == sorted(ids)

    runtime_harness.run(body)


class FailingActivation(EchoInterface):
    attempts = 0

    async def on_activate(self, ctx):
        FailingActivation.attempts += 1
        if FailingActivation.attempts == 1:
            raise RuntimeError("cannot load state")


def test_failed_activation_is_retried_fresh(runtime_harness):
    FailingActivation.attempts = 0

    async def body(rt):
        async with make_manager(rt, factory=FailingActivation) as manager:
            with pytest.raises(HandlerError) as info:
                await manager.request(GO_ID, "count")
            assert info.value.handler == "on_activate"
            assert not manager.is_live(GO_ID)
            assert await manager.request(GO_ID, "count") == 1

    runtime_harness.run(body)


def test_idle_instance_shut_down_after_timeout(runtime_harness):
    async def body(rt):
        recorder = Recorder()
        async with make_manager(rt, observer=recorder, idle_timeout=0.05) as manager:
            await manager.request(GO_ID, "count")
            await rt.sleep(0.02)
            assert manager.is_live(GO_ID)
            await rt.sleep(0.1)
            assert not manager.is_live(GO_ID)
            assert recorder.named("deactivated") == [("deactivated", GO_ID)]
            # A request re-activates it with fresh state.
            assert await manager.request(GO_ID, "count") == 1

    runtime_harness.run(body)


def test_instance_with_connection_not_reaped(runtime_harness):
    async def body(rt):
        async with make_manager(rt, idle_timeout=0.02) as manager:
            connection = await manager.connect(GO_ID, {"instruction": "accept"})
            await rt.sleep(0.1)
            assert manager.is_live(GO_ID)
            await connection.close()
            await rt.sleep(0.1)
            assert not manager.is_live(GO_ID)

    runtime_harness.run(body)


def test_invalid_idle_timeout_rejected(runtime_harness):
    async def body(rt):
        for bad in (0, -1.0):
            with pytest.raises(ConfigError, match="idle_timeout must be a positive number"):
                make_manager(rt, idle_timeout=bad)

    runtime_harness.run(body)


def test_invalid_instance_ids_rejected(runtime_harness):
    async def body(rt):
        async with make_manager(rt) as manager:
            with pytest.raises(ConfigError, match="non-empty string, got ''"):
                await manager.request("", None)
            with pytest.raises(ConfigError, match="lone surrogate"):
                await manager.request("a\ud800", None)
            assert manager.live_instances == 0

    runtime_harness.run(body)
