"""SimKV: reads, isolation, conflicts, limits, the 5-second rule and fault injection."""

from __future__ import annotations

import random

import pytest

from simsi.sim.kv import (
    COMMIT_UNKNOWN_RESULT,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    NOT_COMMITTED,
    TRANSACTION_TOO_OLD,
    ManualClock,
    SimKV,
    SimKVError,
)


def commit_values(kv: SimKV, values: dict[bytes, bytes | None]) -> None:
    tr = kv.create_transaction()
    for key, value in values.items():
        if value is None:
            tr.clear(key)
        else:
            tr.set(key, value)
    tr.commit()


def test_set_get_commit() -> None:
    kv = SimKV()
    commit_values(kv, {b"a": b"1", b"b": b"2"})
    tr = kv.create_transaction()
    assert tr.get(b"a") == b"1"
    assert tr.get(b"missing") is None
    assert kv.items() == [(b"a", b"1"), (b"b", b"2")]
    assert kv.version == 1


def test_reads_own_writes() -> None:
    kv = SimKV()
    commit_values(kv, {b"a": b"old", b"c": b"3"})
    tr = kv.create_transaction()
    tr.set(b"a", b"new")
    tr.set(b"b", b"2")
    tr.clear(b"c")
    assert tr.get(b"a") == b"new"
    assert tr.get(b"c") is None
    assert tr.get_range(b"", b"\xff") == [(b"a", b"new"), (b"b", b"2")]
    assert kv.items() == [(b"a", b"old"), (b"c", b"3")]


def test_get_range_order_limit_reverse() -> None:
    kv = SimKV()
    commit_values(kv, {bytes([n]): bytes([n]) for n in range(10, 0, -1)})
    tr = kv.create_transaction()
    assert [k for k, _ in tr.get_range(b"\x02", b"\x06")] == [b"\x02", b"\x03", b"\x04", b"\x05"]
    assert [k for k, _ in tr.get_range(b"", b"\xff", limit=2)] == [b"\x01", b"\x02"]
    assert [k for k, _ in tr.get_range(b"", b"\xff", limit=2, reverse=True)] == [b"\x0a", b"\x09"]
    tr.set(b"\x03\x00", b"mine")
    assert tr.get_range(b"\x03", b"\x04") == [(b"\x03", b"\x03"), (b"\x03\x00", b"mine")]


def test_inverted_range_rejected() -> None:
    tr = SimKV().create_transaction()
    with pytest.raises(SimKVError) as info:
        tr.get_range(b"b", b"a")
    assert info.value.code == 2005


def test_clear_range() -> None:
    kv = SimKV()
    commit_values(kv, {b"a1": b"1", b"a2": b"2", b"b1": b"3"})
    tr = kv.create_transaction()
    tr.set(b"a3", b"pending")
    tr.clear_range(b"a", b"b")
    tr.set(b"a9", b"after")
    assert tr.get(b"a1") is None
    assert tr.get(b"a3") is None
    assert tr.get_range(b"a", b"b") == [(b"a9", b"after")]
    tr.commit()
    assert kv.items() == [(b"a9", b"after"), (b"b1", b"3")]


def test_snapshot_isolation() -> None:
    kv = SimKV()
    commit_values(kv, {b"k": b"v1"})
    reader = kv.create_transaction()
    assert reader.get(b"k") == b"v1"
    commit_values(kv, {b"k": b"v2", b"new": b"x"})
    assert reader.get(b"k") == b"v1"
    assert reader.get(b"new") is None
    assert reader.get_range(b"", b"\xff") == [(b"k", b"v1")]


def test_read_write_conflict() -> None:
    kv = SimKV()
    commit_values(kv, {b"counter": b"0"})
    first, second = kv.create_transaction(), kv.create_transaction()
    first.set(b"counter", (first.get(b"counter") or b"") + b"+1")
    second.set(b"counter", (second.get(b"counter") or b"") + b"+2")
    first.commit()
    with pytest.raises(SimKVError) as info:
        second.commit()
    assert info.value.code == NOT_COMMITTED
    second.on_error(info.value)
    second.set(b"counter", (second.get(b"counter") or b"") + b"+2")
    second.commit()
    assert kv.items() == [(b"counter", b"0+1+2")]
    assert kv.stats.conflicts == 1
    assert kv.stats.retries == 1


def test_snapshot_reads_do_not_conflict() -> None:
    kv = SimKV()
    commit_values(kv, {b"k": b"1"})
    tr = kv.create_transaction()
    assert tr.snapshot.get(b"k") == b"1"
    assert tr.snapshot.get_range(b"", b"\xff") == [(b"k", b"1")]
    commit_values(kv, {b"k": b"2"})
    tr.set(b"other", b"x")
    tr.commit()
    assert kv.items() == [(b"k", b"2"), (b"other", b"x")]


def test_blind_writes_do_not_conflict() -> None:
    kv = SimKV()
    first, second = kv.create_transaction(), kv.create_transaction()
    first.set(b"k", b"first")
    second.set(b"k", b"second")
    first.commit()
    second.commit()
    assert kv.items() == [(b"k", b"second")]


def test_range_read_conflicts_with_insert() -> None:
    kv = SimKV()
    commit_values(kv, {b"a": b"1", b"c": b"3"})
    tr = kv.create_transaction()
    assert len(tr.get_range(b"a", b"z")) == 2
    commit_values(kv, {b"b": b"2"})
    tr.set(b"x", b"y")
    with pytest.raises(SimKVError) as info:
        tr.commit()
    assert info.value.code == NOT_COMMITTED


def test_limited_range_conflicts_only_up_to_last_key() -> None:
    kv = SimKV()
    commit_values(kv, {b"a": b"1", b"b": b"2", b"c": b"3"})
    tr = kv.create_transaction()
    assert tr.get_range(b"a", b"z", limit=2) == [(b"a", b"1"), (b"b", b"2")]
    commit_values(kv, {b"d": b"4"})
    tr.set(b"x", b"y")
    tr.commit()
    assert kv.items()[-1] == (b"x", b"y")


def test_transaction_too_old() -> None:
    clock = ManualClock(100.0)
    kv = SimKV(clock)
    commit_values(kv, {b"k": b"v"})
    tr = kv.create_transaction()
    assert tr.get(b"k") == b"v"
    clock.advance(5.0)
    assert tr.get(b"k") == b"v"
    clock.advance(0.01)
    with pytest.raises(SimKVError) as info:
        tr.get(b"k")
    assert info.value.code == TRANSACTION_TOO_OLD
    tr.on_error(info.value)
    tr.set(b"k", (tr.get(b"k") or b"") + b"2")
    tr.commit()
    assert kv.items() == [(b"k", b"v2")]
    assert kv.stats.too_old == 1


def test_commit_too_old() -> None:
    clock = ManualClock()
    kv = SimKV(clock)
    tr = kv.create_transaction()
    tr.get(b"k")
    tr.set(b"k", b"v")
    clock.advance(6)
    with pytest.raises(SimKVError) as info:
        tr.commit()
    assert info.value.code == TRANSACTION_TOO_OLD
    assert kv.items() == []


def test_size_limits() -> None:
    tr = SimKV().create_transaction()
    tr.set(b"k" * MAX_KEY_BYTES, b"")
    tr.set(b"v", b"x" * MAX_VALUE_BYTES)
    cases = [
        (lambda: tr.set(b"k" * (MAX_KEY_BYTES + 1), b""), 2102),
        (lambda: tr.set(b"v", b"x" * (MAX_VALUE_BYTES + 1)), 2103),
        (lambda: tr.get(b"k" * (MAX_KEY_BYTES + 1)), 2102),
        (lambda: tr.set(b"\xffsystem", b""), 2004),
    ]
    for call, code in cases:
        with pytest.raises(SimKVError) as info:
            call()
        assert info.value.code == code


def test_transaction_too_large() -> None:
    kv = SimKV()
    tr = kv.create_transaction()
    for n in range(101):
        tr.set(b"key%03d" % n, b"x" * 99_990)
    with pytest.raises(SimKVError) as info:
        tr.commit()
    assert info.value.code == 2101
    with pytest.raises(SimKVError):
        tr.on_error(info.value)
    assert kv.items() == []


def test_on_error_reraises_other_errors() -> None:
    tr = SimKV().create_transaction()
    with pytest.raises(KeyError):
        tr.on_error(KeyError("not fdb"))
    with pytest.raises(SimKVError):
        tr.on_error(SimKVError(2102))


def test_use_after_commit_rejected() -> None:
    tr = SimKV().create_transaction()
    tr.set(b"k", b"v")
    tr.commit()
    with pytest.raises(SimKVError) as info:
        tr.set(b"k", b"again")
    assert info.value.code == 2017
    tr.reset()
    tr.set(b"k", b"again")
    tr.commit()


@pytest.mark.parametrize("applied", [True, False])
def test_injected_unknown_result(applied: bool) -> None:
    kv = SimKV()
    kv.inject_commit_error(COMMIT_UNKNOWN_RESULT, applied=applied)
    tr = kv.create_transaction()
    tr.set(b"k", b"v")
    with pytest.raises(SimKVError) as info:
        tr.commit()
    assert info.value.code == COMMIT_UNKNOWN_RESULT
    assert kv.items() == ([(b"k", b"v")] if applied else [])
    assert kv.stats.unknown_results == 1
    tr.on_error(info.value)
    tr.set(b"k", b"v")
    tr.commit()
    assert kv.items() == [(b"k", b"v")]


def test_injected_conflict_applies_nothing() -> None:
    kv = SimKV()
    kv.inject_commit_error(NOT_COMMITTED)
    tr = kv.create_transaction()
    tr.set(b"k", b"v")
    with pytest.raises(SimKVError) as info:
        tr.commit()
    assert info.value.code == NOT_COMMITTED
    assert kv.items() == []


def run_random_workload(seed: int) -> tuple[list[tuple[bytes, bytes]], object, list[int]]:
    kv = SimKV(rng=random.Random(seed), conflict_probability=0.3, unknown_result_probability=0.3)
    codes: list[int] = []
    for n in range(200):
        tr = kv.create_transaction()
        while True:
            try:
                tr.set(b"k%d" % (n % 17), b"%d" % n)
                tr.commit()
                break
            except SimKVError as exc:
                codes.append(exc.code)
                tr.on_error(exc)
    return kv.items(), kv.stats, codes


def test_random_faults_are_deterministic() -> None:
    first = run_random_workload(7)
    assert first == run_random_workload(7)
    assert first != run_random_workload(8)
    items, _, codes = first
    assert NOT_COMMITTED in codes
    assert COMMIT_UNKNOWN_RESULT in codes
    assert dict(items) == {b"k%d" % (n % 17): b"%d" % n for n in range(200)}


def test_fault_arguments_checked() -> None:
    with pytest.raises(ValueError, match=r"rng=random\.Random"):
        SimKV(conflict_probability=0.1)
    with pytest.raises(ValueError, match="within"):
        SimKV(rng=random.Random(1), unknown_result_probability=1.5)
    with pytest.raises(ValueError, match="forward"):
        ManualClock().advance(-1)


def test_old_reader_survives_garbage_collection() -> None:
    clock = ManualClock()
    kv = SimKV(clock)
    commit_values(kv, {b"k": b"0", b"gone": b"x"})
    reader = kv.create_transaction()
    assert reader.get(b"k") == b"0"
    commit_values(kv, {b"gone": None})
    for n in range(1, 600):
        commit_values(kv, {b"k": b"%d" % n})
    assert reader.get(b"k") == b"0"
    assert reader.get(b"gone") == b"x"
    assert kv.items() == [(b"k", b"599")]


def test_history_trimmed_without_readers() -> None:
    kv = SimKV()
    for n in range(512):
        commit_values(kv, {b"k": b"%d" % n, b"t%d" % n: b"x"})
        commit_values(kv, {b"t%d" % n: None})
    assert len(kv._history[b"k"]) < 300
    assert b"t0" not in kv._history
    assert kv.items() == [(b"k", b"511")]


async def test_run_is_inline_and_close() -> None:
    kv = SimKV()
    assert await kv.run(lambda: 42) == 42
    kv.close()
    with pytest.raises(RuntimeError, match="closed"):
        kv.create_transaction()


def test_error_text_and_code() -> None:
    error = SimKVError(NOT_COMMITTED)
    assert error.code == 1020
    assert "1020" in str(error)
    assert "conflict" in error.description


def test_outage_fails_reads_and_commits() -> None:
    kv = SimKV()
    commit_values(kv, {b"k": b"v"})
    kv.set_available(False)
    tr = kv.create_transaction()
    tr.set(b"k", b"during outage")
    for call in (lambda: tr.get(b"k"), tr.commit):
        with pytest.raises(SimKVError) as info:
            call()
        assert info.value.code == 1031
        with pytest.raises(SimKVError):
            tr.on_error(info.value)
    kv.set_available(True)
    tr.commit()
    assert kv.items() == [(b"k", b"during outage")]
