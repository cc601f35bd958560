"""Seeded random sources, one per named component.

Every random choice in a simulation comes from one seed. Each component (the
network, the workload, one host incarnation's runtime, ...) gets its own
``random.Random`` seeded from SHA-256 of ``"{seed}:{component}"``. Adding random
draws to one component therefore never shifts the draws of another. Unlike
``hash()``, SHA-256 does not depend on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import random


def component_seed(seed: int, component: str) -> int:
    """Return the 64-bit seed of ``component`` derived from the scenario ``seed``."""
    digest = hashlib.sha256(f"{seed}:{component}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def component_random(seed: int, component: str) -> random.Random:
    """Return a ``random.Random`` for ``component``, seeded from the scenario ``seed``."""
    return random.Random(component_seed(seed, component))
