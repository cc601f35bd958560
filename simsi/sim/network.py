"""The simulated network between the client and the hosts.

A message is sent at the current true time and, unless it is lost, delivered
after a latency drawn uniformly from ``latency_ms``. Loss and latency come from
the network's own seeded random source. Rules added with :meth:`Network.add_rule`
can drop messages (partitions, one-way partitions and other network faults are
rules); a dropped message is traced with the rule's reason.

Every send and delivery is traced as a ``message`` event with ``action`` one of
``send``, ``deliver``, ``lost`` (dropped by loss or a rule) or ``unreachable``
(no process listens at the destination when the message arrives).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

import simpy

from simsi.sim.trace import Trace


@dataclass(frozen=True, slots=True)
class Message:
    """One message on the network.

    Attributes:
        msg: ``"request"`` or ``"response"``.
        rid: the request id the message belongs to.
        src: the sender: ``"client"`` or an incarnation like ``"host-1#0"``.
        dst: the destination: ``"client"`` or a host id.
        body: the content.
    """

    msg: str
    rid: int
    src: str
    dst: str
    body: Any = None


Rule = Callable[[Message], str | None]
"""Returns a reason to drop the message, or ``None`` to let it through."""

Deliver = Callable[[Message], Callable[[], None] | None]
"""Finds the receiver of an arrived message: returns the call that hands it over,
or ``None`` when no process listens at the destination."""


class Network:
    """Latency, loss and drop rules for messages.

    Args:
        env: the SimPy environment.
        trace: receives ``message`` events.
        rng: the network's random source.
        latency_ms: one-way latency in milliseconds, uniform in ``[min, max]``.
        loss: probability that a message is lost.
    """

    def __init__(
        self,
        env: simpy.Environment,
        trace: Trace,
        rng: Random,
        latency_ms: tuple[float, float],
        loss: float,
    ) -> None:
        self._env = env
        self._trace = trace
        self._rng = rng
        self._latency = (latency_ms[0] / 1000.0, latency_ms[1] / 1000.0)
        self._loss = loss
        self._rules: list[Rule] = []
        self.sent = 0
        self.delivered = 0
        self.dropped = 0

    def add_rule(self, rule: Rule) -> None:
        """Add a drop rule, checked for every later message."""
        self._rules.append(rule)

    def remove_rule(self, rule: Rule) -> None:
        """Remove a rule added with :meth:`add_rule`."""
        self._rules.remove(rule)

    def choose(self, options: list[Any]) -> Any:
        """Return one of ``options`` picked with the network's random source (load balancing)."""
        if len(options) == 1:
            return options[0]
        return options[self._rng.randrange(len(options))]

    def send(self, message: Message, deliver: Deliver) -> None:
        """Send ``message``; ``deliver`` finds its receiver when it arrives, unless it is dropped."""
        self.sent += 1
        trace = self._trace
        trace.record("message", **_fields(message, "send"))
        reason = self._drop_reason(message)
        if reason is not None:
            self.dropped += 1
            trace.record("message", reason=reason, **_fields(message, "lost"))
            return
        low, high = self._latency
        delay = self._rng.uniform(low, high)
        timer = self._env.timeout(delay)
        timer.callbacks.append(lambda _event: self._arrive(message, deliver))

    def _drop_reason(self, message: Message) -> str | None:
        for rule in self._rules:
            reason = rule(message)
            if reason is not None:
                return reason
        if self._loss > 0 and self._rng.random() < self._loss:
            return "loss"
        return None

    def _arrive(self, message: Message, deliver: Deliver) -> None:
        receive = deliver(message)
        if receive is None:
            self.dropped += 1
            self._trace.record("message", **_fields(message, "unreachable"))
            return
        self.delivered += 1
        self._trace.record("message", **_fields(message, "deliver"))
        receive()


def _fields(message: Message, action: str) -> dict[str, Any]:
    return {
        "msg": message.msg,
        "rid": message.rid,
        "src": message.src,
        "dst": message.dst,
        "action": action,
    }
