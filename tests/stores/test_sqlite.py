"""SQLiteAlarmStore: conformance, durability across SIGKILL, corrupt rows and options."""

from __future__ import annotations

from pathlib import Path

import pytest

from simsi.stores import SQLiteAlarmStore
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory


class TestSQLiteStore(AlarmStoreConformance):
    durable = True

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda: SQLiteAlarmStore(tmp_path / "alarms.db")
