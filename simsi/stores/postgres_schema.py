"""Tables, migrations and statements of the PostgreSQL alarm store.

Each store lives in its own PostgreSQL schema. ``simsi_migrations`` records the
applied schema versions. Migrations run at start inside one transaction under an
advisory lock, so hosts starting at the same time apply each migration once.
Text columns use the ``"C"`` collation, which orders ids by code point, like
Python and every other simsi store.
"""

from __future__ import annotations

import re

from psycopg import sql

from simsi.core.errors import ConfigError

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

#: ``(version, statements)`` in order; each statement formats ``{schema}``.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """
            CREATE TABLE {schema}.alarms (
                shard bigint NOT NULL,
                internal_id text COLLATE "C" NOT NULL,
                alarm_id text COLLATE "C" NOT NULL,
                instance_id text NOT NULL,
                fires_at_us bigint NOT NULL,
                meta text NOT NULL,
                attempt bigint NOT NULL DEFAULT 0,
                revision bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (shard, internal_id, alarm_id)
            )
            """,
            # Serves the ordered page query: equality on shard, then a range on
            # the row (fires_at_us, internal_id, alarm_id) in index order.
            """
            CREATE INDEX alarms_order
                ON {schema}.alarms (shard, fires_at_us, internal_id, alarm_id)
            """,
        ],
    ),
]

#: The schema version this simsi writes.
LATEST_VERSION = MIGRATIONS[-1][0]

_COLUMNS = "instance_id, internal_id, alarm_id, fires_at_us, meta, attempt, revision"

_STATEMENTS = {
    "page_first": f"""
        SELECT {_COLUMNS} FROM {{schema}}.alarms WHERE shard = %s
        ORDER BY fires_at_us, internal_id, alarm_id LIMIT %s
    """,
    "page_after": f"""
        SELECT {_COLUMNS} FROM {{schema}}.alarms
        WHERE shard = %s AND (fires_at_us, internal_id, alarm_id) > (%s, %s, %s)
        ORDER BY fires_at_us, internal_id, alarm_id LIMIT %s
    """,
    "of_instance": f"""
        SELECT {_COLUMNS} FROM {{schema}}.alarms WHERE shard = %s AND internal_id = %s
        ORDER BY fires_at_us, internal_id, alarm_id
    """,
    "upsert": """
        INSERT INTO {schema}.alarms
            (shard, internal_id, alarm_id, instance_id, fires_at_us, meta, attempt, revision)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (shard, internal_id, alarm_id) DO UPDATE SET
            instance_id = excluded.instance_id,
            fires_at_us = excluded.fires_at_us,
            meta = excluded.meta,
            attempt = excluded.attempt,
            revision = excluded.revision
    """,
    "update_if_revision": """
        UPDATE {schema}.alarms
        SET instance_id = %s, fires_at_us = %s, meta = %s, attempt = %s, revision = %s
        WHERE shard = %s AND internal_id = %s AND alarm_id = %s AND revision = %s
    """,
    "delete": """
        DELETE FROM {schema}.alarms WHERE shard = %s AND internal_id = %s AND alarm_id = %s
    """,
    "delete_if_revision": """
        DELETE FROM {schema}.alarms
        WHERE shard = %s AND internal_id = %s AND alarm_id = %s AND revision = %s
    """,
}


def check_schema_name(schema: object) -> str:
    """Return ``schema`` if it is a plain PostgreSQL identifier.

    Raises:
        ConfigError: ``schema`` is not 1 to 63 letters, digits or underscores
            starting with a letter or underscore.
    """
    if not isinstance(schema, str) or _SCHEMA_NAME.fullmatch(schema) is None:
        raise ConfigError(
            f"PostgreSQL schema name must be 1 to 63 letters, digits or underscores, "
            f"starting with a letter or underscore; got {schema!r}"
        )
    return schema


def compose(template: str, schema: str) -> sql.Composed:
    """Return ``template`` with ``{schema}`` replaced by the quoted schema identifier."""
    return sql.SQL(template).format(schema=sql.Identifier(schema))


def statements(schema: str) -> dict[str, sql.Composed]:
    """Return the store's statements for ``schema``, by name."""
    return {name: compose(template, schema) for name, template in _STATEMENTS.items()}
