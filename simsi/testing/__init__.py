"""Testing toolkit for simsi users.

- :class:`~simsi.testing.cluster.SimCluster`: a simulated cluster driven step by step.
- :class:`~simsi.testing.stateful.ClusterMachine`: a Hypothesis state machine that runs
  your interface class through requests, waits, crashes, restarts and clock skew.
- :mod:`simsi.testing.strategies`: Hypothesis strategies for fault schedules,
  workloads and cluster shapes.
- :mod:`simsi.testing.conformance`: the suite every alarm store must pass.
- :mod:`simsi.testing.plugin`: the pytest plugin (``--simsi-seed``, ``simsi_seed``,
  ``simsi_cluster``), registered automatically when simsi is installed.
"""
