"""The per-host alarm engine: loading owned shards, one timer, delivery and retries.

One timer task sleeps until the earliest held alarm is due or until a newly set
alarm becomes the earliest, so alarms fire on time rather than on a polling tick.
Due alarms are delivered per instance, one at a time in key order; different
instances run concurrently up to ``AlarmOptions.max_concurrent``. An alarm leaves
the store only after its handler succeeded, it was cancelled, or its attempts ran
out, so delivery is at-least-once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from simsi.core.alarm_options import AlarmOptions
from simsi.core.alarms import (
    Alarm,
    AlarmStore,
    DoneReason,
    canonical_meta,
    to_micros,
)
from simsi.core.errors import (
    ConfigError,
    HandlerError,
    LifecycleError,
    ManagerClosedError,
    NotOwnerError,
    StoreError,
)
from simsi.core.instance import InstanceState
from simsi.core.interface import AlarmContext
from simsi.core.runtime import CancelledError
from simsi.core.schedule import AlarmRef, AlarmSchedule
from simsi.core.sync import Gate, WorkCounter

if TYPE_CHECKING:
    from simsi.core.instance import LiveInstance
    from simsi.core.manager import InterfaceManager

_MAX_REVISION = 2**53


class AlarmEngine:
    """Loads, schedules and delivers the alarms of one manager's owned shards."""

    def __init__(self, manager: InterfaceManager, store: AlarmStore, options: AlarmOptions):
        runtime = manager.runtime
        self._manager = manager
        self._runtime = runtime
        self._store = store
        self._options = options
        self._observer = manager.observer
        self._shards = manager.owned_shards
        self._schedule = AlarmSchedule(list(self._shards), options.page_size)
        self._wakeup = runtime.event()
        self._running = False
        self._timer: Any = None
        self._load_gate = Gate(runtime, options.load_concurrency)
        self._handler_gate = Gate(runtime, options.max_concurrent)
        self._tasks = WorkCounter(runtime)
        self._loading: dict[int, list[tuple[str, Any]]] = {}
        self._instance_queues: dict[str, list[tuple[int, Alarm]]] = {}
        self._ready = runtime.event()
        self._load_finished = runtime.event()
        self._deferred_pages: set[int] = set()
        self._peak_held = 0

    @property
    def schedule(self) -> AlarmSchedule:
        """The in-memory window of alarms."""
        return self._schedule

    @property
    def peak_held(self) -> int:
        """The maximum number of alarms held in memory at once, in-flight ones included."""
        return self._peak_held

    @property
    def peak_loading(self) -> int:
        """The maximum number of shards that loaded pages at once."""
        return self._load_gate.peak

    @property
    def window_limit(self) -> int:
        """The bound on alarms held in memory: twice a page per owned shard, plus in-flight."""
        return 2 * self._options.page_size * len(self._shards) + self._options.max_concurrent

    @property
    def ready(self) -> bool:
        """Whether the first page of every owned shard is loaded."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Wait until the first page of every owned shard is loaded."""
        await self._ready.wait()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start loading owned shards and the timer; readiness follows once pages are in."""
        self._running = True
        self._spawn("alarm-load", self._initial_load)
        self._timer = self._runtime.spawn(self._run_timer(), name="alarm-timer")
        if self._options.resync_interval is not None:
            self._spawn("alarm-resync", self._resync_loop, self._options.resync_interval)

    async def close(self) -> None:
        """Stop the timer and loaders and wait for running alarm handlers."""
        self._running = False
        self._wakeup.set()
        self._load_finished.set()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(CancelledError):
                await self._timer
        self._load_gate.release()
        self._handler_gate.release()
        await self._tasks.wait_idle()

    def _spawn(self, name: str, work: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``work(*args)`` as a counted task.

        The coroutine is created inside the task, so a task dropped before it
        starts (its host crashed) leaves no coroutine that was never awaited.
        """
        self._tasks.enter()
        self._runtime.spawn(self._counted(work, args), name=name)

    async def _counted(self, work: Callable[..., Awaitable[None]], args: tuple[Any, ...]) -> None:
        try:
            await work(*args)
        finally:
            self._tasks.leave()

    # -- loading -----------------------------------------------------------------------------

    async def _initial_load(self) -> None:
        pending = list(self._shards)
        workers = min(self._options.load_concurrency, len(pending)) or 1
        for _ in range(workers):
            self._spawn("alarm-load-worker", self._load_worker, pending)
        while pending or self._loading:
            if not self._running:
                return
            self._load_finished.clear()
            await self._load_finished.wait()
        self._ready.set()
        self._observer.ready(self._manager.host_id, self._schedule.held)
        deferred, self._deferred_pages = self._deferred_pages, set()
        for shard in sorted(deferred):
            self._request_page(shard)

    async def _load_worker(self, pending: list[int]) -> None:
        while pending and self._running:
            shard = pending.pop(0)
            await self._load_page(shard)

    # NOTE: unless AlarmOptions.resync_interval is set, a loaded shard is never re-read
    # below its frontier, so an alarm another process writes there (an old owner during
    # a hosts-pattern rollout, or a duplicate host identity) stays unseen until restart.
    def _request_page(self, shard: int) -> None:
        if shard in self._loading or not self._running:
            return
        if not self._ready.is_set():
            # First pages go first: a refill before readiness would take a loading
            # place from a shard whose first page is still unread.
            self._deferred_pages.add(shard)
            return
        if self._schedule.needs_page(shard):
            self._spawn(f"alarm-load:{shard}", self._load_page, shard)

    async def _load_page(self, shard: int) -> None:
        """Read the next page of ``shard`` after its frontier, retrying store failures."""
        if shard in self._loading:
            return
        self._loading[shard] = []
        try:
            async with self._load_gate:
                page = await self._read_page(shard)
            if page is None:
                return
            limit = self._options.page_size
            self._schedule.add_page(shard, page, limit)
            self._replay(shard)
            window = self._schedule.window(shard)
            self._observer.shard_loaded(shard, len(page), window.exhausted)
        finally:
            del self._loading[shard]
            self._note_held()
            self._load_finished.set()
            self._wakeup.set()

    def _replay(self, shard: int) -> None:
        """Apply the alarm changes made while ``shard``'s page was being read."""
        for operation, value in self._loading[shard]:
            if operation == "offer":
                self._schedule.offer(shard, value)
            elif operation == "complete":
                self._schedule.discard_revision(value)
            else:
                self._schedule.discard(*value)

    async def _resync_loop(self, interval: float) -> None:
        """Re-read the first page of every owned shard, one shard at a time, every ``interval``."""
        await self._ready.wait()
        while self._running:
            await self._runtime.sleep(interval)
            for shard in self._shards:
                if not self._running:
                    return
                if shard not in self._loading:
                    await self._resync_shard(shard)

    async def _resync_shard(self, shard: int) -> None:
        self._loading[shard] = []
        try:
            async with self._load_gate:
                if not self._running:
                    return
                try:
                    page = await self._store.get_next_alarms(
                        shard, after=None, limit=self._options.page_size
                    )
                except StoreError as exc:
                    self._observer.store_failed("get_next_alarms", shard, exc, detail="resync")
                    return
            added = self._schedule.merge_page(shard, page)
            self._replay(shard)
            if added:
                self._observer.shard_loaded(shard, added, self._schedule.window(shard).exhausted)
        finally:
            del self._loading[shard]
            self._note_held()
            self._wakeup.set()

    async def _read_page(self, shard: int) -> list[Alarm] | None:
        limit = self._options.page_size
        while self._running:
            after = self._schedule.window(shard).frontier
            try:
                return await self._store.get_next_alarms(shard, after=after, limit=limit)
            except StoreError as exc:
                self._observer.store_failed("get_next_alarms", shard, exc)
                await self._runtime.sleep(self._options.store_retry_delay)
        return None

    # -- the timer ---------------------------------------------------------------------------

    async def _run_timer(self) -> None:
        runtime = self._runtime
        schedule = self._schedule
        while self._running:
            self._wakeup.clear()
            now_us = math.floor(runtime.now() * 1_000_000)
            due = schedule.pop_due(now_us)
            if due:
                for shard, alarm in due:
                    self._dispatch(shard, alarm)
                for shard in {shard for shard, _ in due}:
                    self._request_page(shard)
                continue
            head = schedule.peek()
            if head is None:
                await self._wakeup.wait()
                continue
            delay = (head.fires_at_us - now_us) / 1_000_000
            # A plain try costs less than contextlib.suppress on this loop.
            try:
                await runtime.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                continue  # The head alarm is due.

    def _wake_if_earliest(self, alarm: Alarm) -> None:
        head = self._schedule.peek()
        if head is None or head.key >= alarm.key:
            self._wakeup.set()

    def _note_held(self) -> None:
        held = self._schedule.held + self._schedule.in_flight
        if held > self._peak_held:
            self._peak_held = held

    # -- delivery ----------------------------------------------------------------------------

    def _dispatch(self, shard: int, alarm: Alarm) -> None:
        queue = self._instance_queues.get(alarm.internal_id)
        if queue is not None:
            queue.append((shard, alarm))
            queue.sort(key=lambda item: item[1].key)
            return
        self._instance_queues[alarm.internal_id] = []
        self._spawn(f"alarm:{alarm.instance_id}", self._deliver_in_order, shard, alarm)

    async def _deliver_in_order(self, shard: int, alarm: Alarm) -> None:
        """Deliver ``alarm`` and then every alarm of its instance that came due meanwhile."""
        queue = self._instance_queues[alarm.internal_id]
        try:
            while True:
                await self._deliver(shard, alarm)
                if not queue:
                    return
                shard, alarm = queue.pop(0)
        finally:
            for _shard, left in queue:
                self._schedule.complete(left)
            del self._instance_queues[alarm.internal_id]

    async def _deliver(self, shard: int, alarm: Alarm) -> None:
        if not self._running:
            self._schedule.complete(alarm)
            return
        placement = self._manager.placement
        home = placement.shard_of(alarm.instance_id)
        if home != shard and placement.owner_of_shard(home) != self._manager.host_id:
            # Stored under an old shard count: another host owns the instance now, so
            # the alarm stays in the store until `simsi reshard` moves it.
            self._schedule.complete(alarm)
            owner = placement.owner_of_shard(home)
            self._observer.error_swallowed(
                "alarm delivery",
                NotOwnerError(alarm.instance_id, home, owner, self._manager.host_id),
                detail=f"alarm {alarm.alarm_id!r} is stored in shard {shard}, but its instance "
                f"maps to shard {home}; run simsi reshard with the old and new shard counts",
            )
            return
        async with self._handler_gate:
            if not self._running:
                self._schedule.complete(alarm)
                return
            self._observer.alarm_fired(shard, alarm, self._runtime.now() - alarm.fires_at)
            try:
                await self._run_handler(alarm)
            except (ManagerClosedError, LifecycleError):
                self._schedule.complete(alarm)
                return
            except HandlerError as exc:
                await self._retry_or_exhaust(shard, alarm, exc)
                return
        self._observer.alarm_handled(shard, alarm)
        await self._finish(shard, alarm, DoneReason.SUCCEEDED)

    async def _run_handler(self, alarm: Alarm) -> None:
        manager = self._manager
        live = manager._admit_now(alarm.instance_id)
        if live.state is not InstanceState.ACTIVE:
            live = await manager._admit(alarm.instance_id)
        ctx = AlarmContext(live, alarm)
        await live.run(
            "on_alarm",
            lambda: live.obj.on_alarm(ctx, alarm.alarm_id, alarm.meta),
            self._options.handler_timeout,
        )

    async def _retry_or_exhaust(self, shard: int, alarm: Alarm, error: HandlerError) -> None:
        failed = alarm.attempt + 1
        if failed >= self._options.max_attempts:
            await self._finish(shard, alarm, DoneReason.ATTEMPTS_EXHAUSTED)
            return
        delay = self._options.retry_delay(failed, self._runtime.random())
        next_at = self._runtime.now() + delay
        retry = alarm.with_changes(attempt=failed, fires_at_us=to_micros(next_at))
        written = await self._store_call(
            "set_alarm",
            shard,
            alarm,
            self._store.set_alarm,
            shard,
            retry,
            if_revision=alarm.revision,
        )
        if written is False:
            # Replaced or cancelled while the handler ran: the newer state wins.
            self._schedule.complete(alarm)
            return
        self._observer.alarm_retry(shard, retry, error, next_at)
        self._requeue(shard, retry)

    async def _finish(self, shard: int, alarm: Alarm, reason: DoneReason) -> None:
        removed = await self._store_call(
            "mark_alarm_done",
            shard,
            alarm,
            self._store.mark_alarm_done,
            shard,
            alarm.internal_id,
            alarm.alarm_id,
            reason,
            if_revision=alarm.revision,
        )
        if removed is None:
            # The store stayed unreachable: keep the alarm so it fires again later.
            delay = self._options.retry_delay(max(1, alarm.attempt), self._runtime.random())
            later = alarm.with_changes(fires_at_us=to_micros(self._runtime.now() + delay))
            self._requeue(shard, later)
            return
        self._schedule.complete(alarm)
        log = self._loading.get(shard)
        if log is not None:
            # A page read in progress may still hold this alarm; drop it when it lands.
            log.append(("complete", alarm))
        if removed:
            self._observer.alarm_done(shard, alarm, reason)

    def _requeue(self, shard: int, alarm: Alarm) -> None:
        self._schedule.requeue(shard, alarm)
        self._wake_if_earliest(alarm)
        self._note_held()

    async def _store_call(
        self, operation: str, shard: int, alarm: Alarm, fn: Any, *args: Any, **kw: Any
    ) -> Any:
        """Call a store method, retrying failures; return ``None`` if every try failed."""
        for attempt in range(1, self._options.store_attempts + 1):
            try:
                return await fn(*args, **kw)
            except StoreError as exc:
                detail = f"instance {alarm.instance_id!r} alarm {alarm.alarm_id!r} try {attempt}"
                self._observer.store_failed(operation, shard, exc, detail=detail)
                if attempt < self._options.store_attempts:
                    await self._runtime.sleep(self._options.store_retry_delay)
        return None

    # -- the instance context's alarm calls ----------------------------------------------------

    def _new_revision(self) -> int:
        return 1 + int(self._runtime.random() * (_MAX_REVISION - 1))

    async def set_alarm(self, live: LiveInstance, alarm_id: str, at: float, meta: Any) -> None:
        """Write an alarm of ``live`` to the store and schedule it."""
        if not isinstance(alarm_id, str) or not alarm_id:
            raise ConfigError(f"alarm id must be a non-empty string, got {alarm_id!r}")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise ConfigError(
                f"alarm time must be finite epoch seconds like ctx.now() + 5, got {at!r}"
            )
        if at < 0:
            raise ConfigError(
                f"alarm time must be epoch seconds at or after 1970, got {at!r}; "
                "pass an absolute time like ctx.now() + 5, not a delay"
            )
        canonical = canonical_meta(meta)
        alarm = Alarm(
            instance_id=live.instance_id,
            internal_id=live.internal_id,
            alarm_id=alarm_id,
            fires_at_us=to_micros(at),
            meta=canonical,
            attempt=0,
            revision=self._new_revision(),
        )
        await self._store.set_alarm(live.shard, alarm)
        self._observer.alarm_set(live.shard, alarm)
        self._offer(live.shard, alarm)

    def _offer(self, shard: int, alarm: Alarm) -> None:
        log = self._loading.get(shard)
        if log is not None:
            log.append(("offer", alarm))
        if self._schedule.offer(shard, alarm):
            self._wake_if_earliest(alarm)
        self._note_held()

    async def cancel_alarm(self, live: LiveInstance, alarm_id: str) -> bool:
        """Remove an alarm of ``live`` from the store and the schedule."""
        removed = await self._store.mark_alarm_done(
            live.shard, live.internal_id, alarm_id, DoneReason.CANCELLED
        )
        ref: AlarmRef = (live.internal_id, alarm_id)
        log = self._loading.get(live.shard)
        if log is not None:
            log.append(("discard", ref))
        self._schedule.discard(*ref)
        if removed:
            stub = Alarm(live.instance_id, live.internal_id, alarm_id, 0)
            self._observer.alarm_done(live.shard, stub, DoneReason.CANCELLED)
        return bool(removed)

    async def list_alarms(self, live: LiveInstance) -> list[Alarm]:
        """Return the stored alarms of ``live``."""
        return await self._store.get_alarms(live.shard, live.internal_id)


def require_store(store: AlarmStore | None, host_id: str) -> AlarmStore:
    """Return ``store`` or raise because alarms were used without one."""
    if store is None:
        raise LifecycleError(
            f"host {host_id!r} has no alarm store; pass store=... to InterfaceManager to use alarms"
        )
    return store
