"""A Hypothesis state machine that drives your interface class inside the simulator.

Subclass :class:`ClusterMachine`, name your interface class, and let Hypothesis
interleave requests, waiting, host crashes, restarts and clock skew. After every
step the machine checks that no instance was live on two processes at once and
that every request reached its owner; at the end it restarts every host, lets
pending alarms finish and checks that none was lost::

    from hypothesis import strategies as st
    from simsi.testing.stateful import ClusterMachine


    class CartMachine(ClusterMachine):
        interface = Cart
        instance_ids = ("cart-1", "cart-2")
        payloads = st.fixed_dictionaries({"add": st.sampled_from(["apple", "pear"])})

        def on_response(self, instance_id, payload, response):
            if response.ok:
                assert response.value >= 1


    TestCart = CartMachine.TestCase

Add your own ``@rule`` methods that use ``self.cluster`` (a
:class:`~simsi.testing.cluster.SimCluster`) for steps specific to your class.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from hypothesis.strategies import SearchStrategy

from simsi.core.interface import StableInterface
from simsi.testing.cluster import Response, SimCluster


class ClusterMachine(RuleBasedStateMachine):
    """Base class of stateful tests that run an interface class in a simulated cluster.

    Class attributes to set in a subclass:
        interface: the interface class under test (or ``"pkg.module:Class"``). Required.
        hosts: the host pattern (default ``"host-{0..2}"``).
        shards: the number of shards (default 16).
        instance_ids: the ids requests go to.
        payloads: a strategy for request payloads (default ``None`` payloads).
        faults: whether to crash, restart and skew hosts (default ``True``).
        max_clock_offset_s: the largest clock offset a skew step sets, in seconds.
        max_wait_s: the maximum length of one wait step, in seconds.
        drain_s: how long the final drain lets alarms run, in seconds.
    """

    interface: ClassVar[type[StableInterface] | str]
    hosts: ClassVar[str] = "host-{0..2}"
    shards: ClassVar[int] = 16
    instance_ids: ClassVar[tuple[str, ...]] = ("inst-0", "inst-1", "inst-2")
    payloads: ClassVar[SearchStrategy[Any]] = st.none()
    faults: ClassVar[bool] = True
    max_clock_offset_s: ClassVar[float] = 5.0
    max_wait_s: ClassVar[float] = 60.0
    drain_s: ClassVar[float] = 600.0

    def __init__(self) -> None:
        super().__init__()
        self._cluster: SimCluster | None = None
        self.down: set[str] = set()

    @property
    def cluster(self) -> SimCluster:
        """The simulated cluster of this run."""
        if self._cluster is None:
            raise RuntimeError("the cluster is built by the machine's first step")
        return self._cluster

    # -- hooks for subclasses ----------------------------------------------------------------

    def on_response(self, instance_id: str, payload: Any, response: Response) -> None:
        """Check one response; override to assert on your interface's results."""

    def check_state(self) -> None:
        """Check your own invariants after every step; override as needed."""

    # -- steps -------------------------------------------------------------------------------

    @initialize(seed=st.integers(min_value=0, max_value=2**16))
    def build_cluster(self, seed: int) -> None:
        """Build the cluster with a seed Hypothesis can shrink."""
        self._cluster = SimCluster(self.interface, hosts=self.hosts, shards=self.shards, seed=seed)

    @rule(data=st.data())
    def send_request(self, data: st.DataObject) -> None:
        """Send one request and hand its response to :meth:`on_response`."""
        instance_id = data.draw(st.sampled_from(self.instance_ids), label="instance_id")
        payload = data.draw(self.payloads, label="payload")
        response = self.cluster.request(instance_id, payload)
        self.on_response(instance_id, payload, response)

    @rule(seconds=st.floats(min_value=0.0, max_value=1.0))
    def wait(self, seconds: float) -> None:
        """Let a fraction of ``max_wait_s`` pass, so alarms come due."""
        self.cluster.advance(seconds * self.max_wait_s)

    @precondition(lambda self: self.faults)
    @rule(data=st.data())
    def crash_host(self, data: st.DataObject) -> None:
        """Kill every process of one host."""
        host = data.draw(st.sampled_from(self.cluster.hosts), label="host")
        self.cluster.crash(host)
        self.down.add(host)

    @precondition(lambda self: bool(self.down))
    @rule(data=st.data())
    def restart_host(self, data: st.DataObject) -> None:
        """Start a crashed host again."""
        host = data.draw(st.sampled_from(sorted(self.down)), label="host")
        self.cluster.restart(host)
        self.down.discard(host)

    @precondition(lambda self: self.faults)
    @rule(data=st.data())
    def skew_clock(self, data: st.DataObject) -> None:
        """Set one host's clock offset."""
        host = data.draw(st.sampled_from(self.cluster.hosts), label="host")
        limit = self.max_clock_offset_s
        offset = data.draw(st.floats(min_value=-limit, max_value=limit), label="offset_s")
        self.cluster.set_clock_offset(host, offset)

    # -- checks ------------------------------------------------------------------------------

    @invariant()
    def _check(self) -> None:
        """Single instance and routing hold after every step, plus :meth:`check_state`."""
        if self._cluster is None:
            return
        self._cluster.check(alarms=False)
        self.check_state()

    def teardown(self) -> None:
        """Restart every host, let alarms finish and check that none was lost."""
        if self._cluster is None:
            return
        for host in sorted(self.down):
            self._cluster.restart(host)
        self.down.clear()
        self._cluster.drain(self.drain_s)
        self._cluster.check(alarms=True)
