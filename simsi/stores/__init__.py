"""AlarmStore implementations: memory, SQLite, PostgreSQL, Redis and FoundationDB.

:func:`open_store` builds a store from a URL such as ``sqlite:///alarms.db``.
"""

from simsi.stores.foundationdb import FoundationDBAlarmStore
from simsi.stores.memory import MemoryAlarmStore
from simsi.stores.sqlite import SQLiteAlarmStore

__all__ = [
    "FoundationDBAlarmStore",
    "MemoryAlarmStore",
    "SQLiteAlarmStore",
]
