"""MemoryAlarmStore against the conformance suite."""

from __future__ import annotations

import pytest

from simsi.stores import MemoryAlarmStore
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory


class TestMemoryStore(AlarmStoreConformance):
    durable = False

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return MemoryAlarmStore
