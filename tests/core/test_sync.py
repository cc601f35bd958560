from simsi.core.sync import Gate, WorkCounter


def test_gate_limits_and_grants_in_order(runtime_harness):
    async def body(rt):
        gate = Gate(rt, 2)
        order = []

        async def worker(n):
            async with gate:
                order.append(("in", n, gate.in_use))
                await rt.sleep(0.01)
            order.append(("out", n))

        tasks = [rt.spawn(worker(n), name=f"w{n}") for n in range(5)]
        for task in tasks:
            await task
        entered = [event[1] for event in order if event[0] == "in"]
        assert entered == [0, 1, 2, 3, 4]
        assert max(event[2] for event in order if event[0] == "in") == 2
        assert gate.peak == 2
        assert gate.in_use == 0
        assert gate.waiting == 0

    runtime_harness.run(body)


def test_gate_cancelled_waiter_leaves_queue(runtime_harness):
    async def body(rt):
        gate = Gate(rt, 1)
        await gate.acquire()
        waiter = rt.spawn(gate.acquire(), name="waiter")
        await rt.sleep(0.001)
        assert gate.waiting == 1
        waiter.cancel()
        await rt.sleep(0.001)
        assert gate.waiting == 0
        gate.release()
        assert gate.in_use == 0
        await gate.acquire()
        assert gate.in_use == 1

    runtime_harness.run(body)


def test_work_counter_waits_for_idle(runtime_harness):
    async def body(rt):
        counter = WorkCounter(rt)
        counter.enter()
        counter.enter()

        async def finish():
            await rt.sleep(0.01)
            counter.leave()
            await rt.sleep(0.01)
            counter.leave()

        rt.spawn(finish(), name="finish")
        await counter.wait_idle()
        assert counter.count == 0

    runtime_harness.run(body)
