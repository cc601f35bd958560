"""The simulated network between the client, the hosts and the alarm store.

A message is sent at the current true time and, unless it is lost, delivered
after a latency drawn uniformly from ``latency_ms``. Loss and latency come from
the network's own seeded random source.

Network faults are :class:`LinkRule` objects added with :meth:`Network.add_links`
under a name, for a duration or until :meth:`Network.heal`. A rule matches
messages by their endpoints (see :func:`endpoint_aliases`) and drops, duplicates
or delays them with given probabilities. A partition is a rule that drops with
probability 1. Such rules also cut a process off from the store: see
:meth:`Network.blocked`. Plain drop functions added with :meth:`Network.add_rule`
still work for tests.

Every send and delivery is traced as a ``message`` event with an ``action``:

- ``send`` and ``deliver``;
- ``lost``: dropped by loss or a rule, with ``reason``;
- ``unreachable``: no process listens at the destination when the message arrives;
- ``duplicate``: a rule sent a second copy;
- ``delay``: a rule added latency, so later messages may overtake this one.
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

Deliver = Callable[[Message], Callable[[], None] | str | None]
"""Finds the receiver of an arrived message: returns the call that hands it over,
a reason when a rule keeps it from every receiver, or ``None`` when no process
listens at the destination."""


def endpoint_aliases(name: str) -> frozenset[str]:
    """Return every endpoint name that a :class:`LinkRule` may use to match ``name``.

    ``"client"`` and ``"store"`` match only themselves. A process label
    ``"green:host-1#0"`` is matched by itself, by its host key ``"green:host-1"``
    and by its host id ``"host-1"``. A main-fleet label ``"host-1#0"`` is matched
    by itself and by ``"host-1"``. So a rule naming ``"host-1"`` matches every
    process of host-1 in every fleet, and one naming ``"host-1#0"`` only that process.
    """
    names = {name}
    key = name.partition("#")[0]
    names.add(key)
    names.add(key.rpartition(":")[2])
    return frozenset(names)


@dataclass(frozen=True)
class LinkRule:
    """A network fault on messages between matching endpoints.

    A side (``src`` or ``dst``) matches when it is ``None`` or shares a name with
    the endpoint's aliases, and the endpoint shares none with the side's
    ``except_`` set. ``either`` (if set) must share a name with the source or
    the destination. Probabilities are drawn from the network's random source,
    except that a probability of 1 draws nothing.

    Attributes:
        reason: names the rule in the trace, like ``"partition:p1"``.
        src: endpoint names one of which must match the sender, or ``None`` for any sender.
        dst: endpoint names one of which must match the receiver, or ``None`` for any.
        either: endpoint names one of which must match the sender or the receiver,
            or ``None``.
        except_src: senders the rule never matches.
        except_dst: receivers the rule never matches.
        drop: probability that a matching message is lost.
        duplicate: probability that a matching message is delivered twice.
        delay: probability that a matching message gets extra latency.
        delay_s: the extra latency in seconds, uniform in ``[min, max]``; also the
            extra latency of a duplicate copy.
    """

    reason: str
    src: frozenset[str] | None = None
    dst: frozenset[str] | None = None
    either: frozenset[str] | None = None
    except_src: frozenset[str] = frozenset()
    except_dst: frozenset[str] = frozenset()
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_s: tuple[float, float] = (0.0, 0.0)

    def matches(self, src: frozenset[str], dst: frozenset[str]) -> bool:
        """Return whether the rule applies between endpoints with aliases ``src`` and ``dst``."""
        if self.src is not None and not self.src & src:
            return False
        if self.dst is not None and not self.dst & dst:
            return False
        if self.either is not None and not (self.either & src or self.either & dst):
            return False
        return not (self.except_src & src or self.except_dst & dst)


class Network:
    """Latency, loss and network fault rules for messages.

    Args:
        env: the SimPy environment.
        trace: receives ``message`` and ``heal`` events.
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
        # Active link rules by the name they were added under, in insertion order.
        self._links: dict[str, list[LinkRule]] = {}
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.duplicated = 0
        self.delayed = 0

    def add_rule(self, rule: Rule) -> None:
        """Add a drop rule, checked for every later message."""
        self._rules.append(rule)

    def remove_rule(self, rule: Rule) -> None:
        """Remove a rule added with :meth:`add_rule`."""
        self._rules.remove(rule)

    # -- network faults ----------------------------------------------------------------------

    def add_links(self, name: str, rules: list[LinkRule], duration_s: float | None = None) -> None:
        """Add ``rules`` under ``name``; they end after ``duration_s`` true seconds, or at a heal.

        Rules added under a name that is active join the rules already there.
        """
        self._links.setdefault(name, []).extend(rules)
        if duration_s is not None:
            timer = self._env.timeout(duration_s)
            timer.callbacks.append(lambda _event: self._expire(name, rules))

    def _expire(self, name: str, rules: list[LinkRule]) -> None:
        active = self._links.get(name)
        if active is None:
            return
        kept = [rule for rule in active if all(rule is not old for old in rules)]
        if len(kept) == len(active):
            return
        if kept:
            self._links[name] = kept
        else:
            del self._links[name]
        self._trace.record("heal", name=name, cause="duration")

    def heal(self, name: str | None = None) -> list[str]:
        """End the rules added under ``name``, or every rule if ``name`` is ``None``.

        Returns:
            The names healed, in the order they were added.
        """
        if name is None:
            names = list(self._links)
        elif name in self._links:
            names = [name]
        else:
            names = []
        for healed in names:
            del self._links[healed]
            self._trace.record("heal", name=healed, cause="heal")
        return names

    @property
    def active_links(self) -> dict[str, list[LinkRule]]:
        """The active link rules by name; do not modify."""
        return self._links

    def blocked(self, src: str, dst: str) -> str | None:
        """Return the reason of a rule that drops every message from ``src`` to ``dst``, or ``None``.

        Only rules with drop probability 1 (partitions) count, so the check draws
        nothing from the random source. The store and the host lookup use it for
        calls that are not traced as messages.
        """
        if not self._links:
            return None
        src_names, dst_names = endpoint_aliases(src), endpoint_aliases(dst)
        for rules in self._links.values():
            for rule in rules:
                if rule.drop >= 1.0 and rule.matches(src_names, dst_names):
                    return rule.reason
        return None

    def _matching(self, message: Message) -> list[LinkRule]:
        src_names, dst_names = endpoint_aliases(message.src), endpoint_aliases(message.dst)
        return [
            rule
            for rules in self._links.values()
            for rule in rules
            if rule.matches(src_names, dst_names)
        ]

    # -- sending -----------------------------------------------------------------------------

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
        links = self._matching(message) if self._links else []
        reason = self._drop_reason(message, links)
        if reason is not None:
            self.dropped += 1
            trace.record("message", reason=reason, **_fields(message, "lost"))
            return
        low, high = self._latency
        delay = self._rng.uniform(low, high)
        rng = self._rng
        for rule in links:
            if rule.delay > 0 and (rule.delay >= 1.0 or rng.random() < rule.delay):
                extra = rng.uniform(*rule.delay_s)
                delay += extra
                self.delayed += 1
                trace.record(
                    "message", reason=rule.reason, extra_s=extra, **_fields(message, "delay")
                )
        self._schedule(message, deliver, delay)
        for rule in links:
            if rule.duplicate > 0 and (rule.duplicate >= 1.0 or rng.random() < rule.duplicate):
                copy_delay = delay + rng.uniform(*rule.delay_s)
                self.duplicated += 1
                trace.record("message", reason=rule.reason, **_fields(message, "duplicate"))
                self._schedule(message, deliver, copy_delay)

    def _schedule(self, message: Message, deliver: Deliver, delay: float) -> None:
        timer = self._env.timeout(delay)
        timer.callbacks.append(lambda _event: self._arrive(message, deliver))

    def _drop_reason(self, message: Message, links: list[LinkRule]) -> str | None:
        for rule in self._rules:
            reason = rule(message)
            if reason is not None:
                return reason
        for link in links:
            if link.drop >= 1.0 or (link.drop > 0 and self._rng.random() < link.drop):
                return link.reason
        if self._loss > 0 and self._rng.random() < self._loss:
            return "loss"
        return None

    def _arrive(self, message: Message, deliver: Deliver) -> None:
        receive = deliver(message)
        if receive is None:
            self.dropped += 1
            self._trace.record("message", **_fields(message, "unreachable"))
            return
        if isinstance(receive, str):
            self.dropped += 1
            self._trace.record("message", reason=receive, **_fields(message, "lost"))
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
