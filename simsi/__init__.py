"""simsi: stable interfaces.

Exactly one live instance per instance id across a cluster of sequentially named
hosts, routed by hashing alone, with durable alarms; the same code runs on
production hosts (asyncio) and in a deterministic SimPy simulator.
"""

from simsi.core import *  # noqa: F403
from simsi.core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = [*_core_all, "__version__"]
