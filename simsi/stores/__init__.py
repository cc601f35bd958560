"""AlarmStore implementations: memory, SQLite, PostgreSQL, Redis and FoundationDB.

:func:`open_store` builds a store from a URL such as ``sqlite:///alarms.db``.
"""

from simsi.stores.foundationdb import FoundationDBAlarmStore
from simsi.stores.memory import MemoryAlarmStore
from simsi.stores.postgres import PostgresAlarmStore
from simsi.stores.redis import RedisAlarmStore
from simsi.stores.sqlite import SQLiteAlarmStore
from simsi.stores.url import ACCEPTED_FORMS, open_store

__all__ = [
    "ACCEPTED_FORMS",
    "FoundationDBAlarmStore",
    "MemoryAlarmStore",
    "PostgresAlarmStore",
    "RedisAlarmStore",
    "SQLiteAlarmStore",
    "open_store",
]
