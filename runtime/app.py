"""Example interfaces for ``simsi serve``: a counter and a reminder that uses alarms.

Run a host with both, choosing the class by instance id prefix::

    simsi serve --app runtime/app.py:make_interface --host-id host-0 --hosts host-0 \\
        --store sqlite:///simsi-{host}.db --listen 127.0.0.1:8080

Instance ids starting with ``reminder:`` are :class:`Reminder` instances, and
every other id is a :class:`Counter`. Set ``SIMSI_EXAMPLE_FIRED_LOG`` to a file
path to record every fired reminder there as one JSON line. The file is flushed
and fsynced before ``on_alarm`` returns, so a record survives a crash of the
host. Without the variable, fired reminders are kept in memory only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from simsi.core.connection import Connection, IncomingConnection
from simsi.core.interface import AlarmContext, InstanceContext, StableInterface

#: Environment variable naming the JSON-lines file of fired reminders.
FIRED_LOG_ENV = "SIMSI_EXAMPLE_FIRED_LOG"

_fired_in_memory: list[dict[str, Any]] = []


class Counter(StableInterface):
    """A counter held in memory while the instance is live.

    Requests (JSON objects with an ``op``):

    - ``{"op": "add", "n": 1}`` adds ``n`` (default 1) and returns ``{"count": ...}``.
    - ``{"op": "get"}`` returns ``{"count": ...}``.
    - ``{"op": "sleep", "seconds": 2}`` waits, then returns ``{"slept": 2}`` (slow work).
    - ``{"op": "fail"}`` raises ``ValueError`` (shows how handler errors reach callers).

    WebSocket connections are accepted unless the query has ``mode=reject``
    (rejected) or ``mode=ignore`` (left unhandled). Each message
    ``{"op": "add", "n": 1}`` gets the reply ``{"count": ...}``, and
    ``{"op": "close"}`` makes the instance close the connection with code 1000.
    """

    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id)
        self.count = 0

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        """Apply one counter operation."""
        op = payload.get("op") if isinstance(payload, dict) else None
        if op == "add":
            self.count += int(payload.get("n", 1))
            return {"count": self.count, "host": ctx.host_id}
        if op == "get":
            return {"count": self.count, "host": ctx.host_id}
        if op == "sleep":
            seconds = float(payload.get("seconds", 1))
            await ctx.sleep(seconds)
            return {"slept": seconds, "host": ctx.host_id}
        if op == "fail":
            raise ValueError(f"counter {self.instance_id!r} was asked to fail")
        raise ValueError(f"unknown op {op!r}; use add, get, sleep or fail")

    async def on_connect(self, ctx: InstanceContext, connection: IncomingConnection) -> None:
        """Accept the connection unless its meta requests a rejection."""
        mode = connection.meta.get("mode")
        if mode == "reject":
            connection.reject("rejected on request (mode=reject)")
            return
        if mode == "ignore":
            return
        end = connection.accept()
        await end.send({"hello": self.instance_id, "count": self.count})

    async def on_message(self, ctx: InstanceContext, connection: Connection, message: Any) -> None:
        """Reply to ``add`` with the new count; close the connection on ``close``."""
        op = message.get("op") if isinstance(message, dict) else None
        if op == "close":
            await connection.close(1000, "closed by the instance")
            return
        if op == "add":
            self.count += int(message.get("n", 1))
        await connection.send({"count": self.count})


class Reminder(StableInterface):
    """Reminders delivered by durable alarms.

    Requests:

    - ``{"op": "remind", "in": 5, "text": "...", "id": "optional"}`` sets an alarm
      due in ``in`` seconds and returns ``{"alarm_id", "fires_at"}``.
    - ``{"op": "pending"}`` returns the instance's pending alarms.
    - ``{"op": "cancel", "id": "..."}`` cancels one and returns ``{"cancelled": bool}``.
    - ``{"op": "fired"}`` returns the reminders of this instance fired so far.
    """

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        """Set, list, cancel or report reminders."""
        op = payload.get("op") if isinstance(payload, dict) else None
        if op == "remind":
            delay = float(payload.get("in", 0))
            alarm_id = str(payload.get("id") or f"r-{ctx.now():.6f}-{int(ctx.random() * 1e9)}")
            fires_at = ctx.now() + delay
            meta = {"text": str(payload.get("text", "")), "set_at": ctx.now()}
            await ctx.set_alarm(alarm_id, fires_at, meta)
            return {"alarm_id": alarm_id, "fires_at": fires_at}
        if op == "pending":
            alarms = await ctx.list_alarms()
            return [{"alarm_id": a.alarm_id, "fires_at": a.fires_at} for a in alarms]
        if op == "cancel":
            return {"cancelled": await ctx.cancel_alarm(str(payload.get("id")))}
        if op == "fired":
            return [row for row in read_fired() if row["instance_id"] == self.instance_id]
        raise ValueError(f"unknown op {op!r}; use remind, pending, cancel or fired")

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        """Record the fired reminder, in the fired log file (fsynced) when one is set, before returning."""
        record = {
            "instance_id": self.instance_id,
            "alarm_id": alarm_id,
            "text": (meta or {}).get("text"),
            "fires_at": ctx.alarm.fires_at,
            "fired_at": ctx.now(),
            "host": ctx.host_id,
            "attempt": ctx.attempt,
        }
        path = os.environ.get(FIRED_LOG_ENV)
        if not path:
            _fired_in_memory.append(record)
            return
        _append_line(path, json.dumps(record))


def _append_line(path: str, line: str) -> None:
    # NOTE: a blocking write on the event loop; fine for an example, too slow for
    # a real handler at high alarm rates.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_fired() -> list[dict[str, Any]]:
    """Return every fired reminder recorded by this process (or in the shared file)."""
    path = os.environ.get(FIRED_LOG_ENV)
    if not path:
        return list(_fired_in_memory)
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def make_interface(instance_id: str) -> StableInterface:
    """Return a :class:`Reminder` for ids starting with ``reminder:``, else a :class:`Counter`."""
    if instance_id.startswith("reminder:"):
        return Reminder(instance_id)
    return Counter(instance_id)
