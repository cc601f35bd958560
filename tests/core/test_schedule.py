import random

from simsi.core.alarms import Alarm
from simsi.core.schedule import AlarmSchedule


def make(internal: str, alarm_id: str, at_us: int, revision: int = 1) -> Alarm:
    return Alarm(f"inst-{internal}", internal, alarm_id, at_us, revision=revision)


def check(schedule: AlarmSchedule) -> None:
    """The invariants every schedule must keep after each step."""
    total = 0
    for shard in schedule._windows:
        window = schedule.window(shard)
        refs = schedule._by_shard[shard]
        assert window.held == len(refs)
        total += window.held
        for ref in refs:
            alarm = schedule._held[ref][2]
            assert window.covers(alarm.key), (shard, alarm.key, window.frontier)
    assert total == schedule.held


def test_pop_due_returns_key_order():
    schedule = AlarmSchedule([0, 1], page_size=8)
    schedule.add_page(0, [make("b", "x", 5), make("a", "y", 5), make("a", "x", 5)], limit=8)
    schedule.add_page(1, [make("c", "z", 3)], limit=8)
    check(schedule)
    due = schedule.pop_due(5)
    assert [alarm.key for _, alarm in due] == [
        (3, "c", "z"),
        (5, "a", "x"),
        (5, "a", "y"),
        (5, "b", "x"),
    ]
    assert [shard for shard, _ in due] == [1, 0, 0, 0]
    assert schedule.held == 0
    assert schedule.in_flight == 4
    check(schedule)


def test_pop_due_leaves_future_alarms():
    schedule = AlarmSchedule([0], page_size=8)
    schedule.add_page(0, [make("a", "1", 10), make("a", "2", 20)], limit=8)
    assert [a.alarm_id for _, a in schedule.pop_due(15)] == ["1"]
    assert schedule.peek().alarm_id == "2"


def test_offer_past_frontier_stays_in_store():
    schedule = AlarmSchedule([0], page_size=2)
    schedule.add_page(0, [make("a", "1", 10), make("a", "2", 20)], limit=2)
    assert schedule.window(0).frontier == (20, "a", "2")
    assert not schedule.window(0).exhausted
    assert schedule.offer(0, make("b", "1", 30)) is False
    assert schedule.offer(0, make("b", "2", 15)) is True
    assert schedule.held == 3
    check(schedule)


def test_offer_on_exhausted_shard_is_held():
    schedule = AlarmSchedule([0], page_size=4)
    schedule.add_page(0, [make("a", "1", 10)], limit=4)
    assert schedule.window(0).exhausted
    assert schedule.offer(0, make("b", "1", 10**12)) is True


def test_replace_drops_old_version():
    schedule = AlarmSchedule([0], page_size=4)
    schedule.add_page(0, [], limit=4)
    schedule.offer(0, make("a", "1", 10, revision=1))
    schedule.offer(0, make("a", "1", 50, revision=2))
    assert schedule.held == 1
    assert schedule.pop_due(20) == []
    due = schedule.pop_due(50)
    assert [(a.fires_at_us, a.revision) for _, a in due] == [(50, 2)]
    check(schedule)


def test_discard_removes_alarm():
    schedule = AlarmSchedule([0], page_size=4)
    schedule.add_page(0, [make("a", "1", 10)], limit=4)
    schedule.discard("a", "1")
    assert schedule.peek() is None
    assert schedule.held == 0


def test_requeue_after_replacement_keeps_newer():
    schedule = AlarmSchedule([0], page_size=4)
    schedule.add_page(0, [make("a", "1", 10, revision=1)], limit=4)
    ((shard, old),) = schedule.pop_due(10)
    schedule.offer(0, make("a", "1", 99, revision=2))
    assert schedule.requeue(shard, old.with_changes(fires_at_us=20, attempt=1)) is False
    assert schedule.peek().revision == 2
    check(schedule)


def test_complete_ignores_stale_revision():
    schedule = AlarmSchedule([0], page_size=4)
    schedule.add_page(0, [make("a", "1", 10, revision=1)], limit=4)
    ((_, first),) = schedule.pop_due(10)
    schedule.offer(0, make("a", "1", 11, revision=2))
    ((_, second),) = schedule.pop_due(11)
    schedule.complete(first)
    assert schedule.in_flight == 1
    schedule.complete(second)
    assert schedule.in_flight == 0


def test_trim_keeps_window_bounded():
    schedule = AlarmSchedule([0], page_size=4)
    schedule.add_page(0, [], limit=4)
    for i in range(20):
        schedule.offer(0, make("a", f"{i:02}", 1000 - i))
        check(schedule)
        assert schedule.window(0).held <= 8
    window = schedule.window(0)
    assert not window.exhausted
    held_keys = sorted(entry[2].key for entry in schedule._held.values())
    assert held_keys[-1] == window.frontier
    # The earliest alarm overall is still held.
    assert schedule.peek().fires_at_us == 1000 - 19


def test_add_page_skips_in_flight_and_held():
    schedule = AlarmSchedule([0], page_size=2)
    schedule.add_page(0, [make("a", "1", 10), make("a", "2", 20)], limit=2)
    schedule.pop_due(10)
    added = schedule.add_page(0, [make("a", "1", 10), make("a", "3", 30)], limit=2)
    assert added == 1
    assert schedule.held == 2
    check(schedule)


def test_needs_page_when_low():
    schedule = AlarmSchedule([0], page_size=8)
    schedule.add_page(0, [make("a", str(i), i) for i in range(8)], limit=8)
    assert not schedule.needs_page(0)
    schedule.pop_due(5)
    assert schedule.needs_page(0)


def test_random_operations_keep_invariants():
    rng = random.Random(1234)
    schedule = AlarmSchedule([0, 1, 2], page_size=5)
    for shard in (0, 1, 2):
        schedule.add_page(shard, [], limit=5)
    now = 0
    fired: list[tuple[int, str, str]] = []
    for _step in range(2000):
        op = rng.random()
        shard = rng.randrange(3)
        ref = (f"i{shard}-{rng.randrange(4)}", f"a{rng.randrange(6)}")
        if op < 0.5:
            schedule.offer(
                shard,
                make(ref[0], ref[1], now + rng.randrange(1, 100), revision=rng.randrange(1, 10**9)),
            )
        elif op < 0.6:
            schedule.discard(*ref)
        else:
            now += rng.randrange(0, 20)
            due = schedule.pop_due(now)
            keys = [alarm.key for _, alarm in due]
            assert keys == sorted(keys)
            assert all(alarm.fires_at_us <= now for _, alarm in due)
            for _, alarm in due:
                schedule.complete(alarm)
                fired.append(alarm.key)
        check(schedule)
    assert fired
