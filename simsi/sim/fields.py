"""Typed reading of scenario tables, with errors that name the file, key, value and fix.

A :class:`Table` wraps one TOML table (or a dict built in Python). Each accessor
reads one key, checks its type and range, and remembers the key;
:meth:`Table.finish` then rejects every key that was never read, so a typo like
``request_rte`` is reported instead of silently ignored.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from simsi.core.errors import ScenarioError


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default marking a key that must be present."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Table:
    """One table of a scenario being read.

    Args:
        data: the table's keys and values.
        prefix: the dotted key of the table itself, like ``"workload"`` or ``"faults[2]"``.
        path: the scenario file, or ``None`` for a scenario built in Python.
    """

    def __init__(self, data: Mapping[str, Any], prefix: str, path: str | None) -> None:
        self._data = data
        self._prefix = prefix
        self._path = path
        self._read: set[str] = set()

    @property
    def path(self) -> str | None:
        """The scenario file, or ``None``."""
        return self._path

    @property
    def prefix(self) -> str:
        """The dotted key of this table."""
        return self._prefix

    def key(self, name: str) -> str:
        """Return the dotted key of ``name`` in this table."""
        return f"{self._prefix}.{name}" if self._prefix else name

    def error(self, name: str | None, message: str) -> ScenarioError:
        """Return a :class:`ScenarioError` about key ``name`` (or the whole table)."""
        key = self.key(name) if name is not None else (self._prefix or None)
        return ScenarioError(message, path=self._path, key=key)

    def has(self, name: str) -> bool:
        """Return whether the table sets ``name``."""
        return name in self._data

    def raw(self, name: str, default: Any = REQUIRED, *, example: str = "") -> Any:
        """Return the value of ``name`` unchecked, or ``default`` when it is missing."""
        self._read.add(name)
        if name in self._data:
            return self._data[name]
        if default is REQUIRED:
            hint = f"; add it, e.g. {example}" if example else ""
            raise self.error(name, f"missing required key{hint}")
        return default

    def number(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: bool = False,
        below: bool = False,
        unit: str = "",
        example: str = "",
    ) -> float:
        """Return ``name`` as a finite float within the given bounds.

        Args:
            minimum: the smallest allowed value (excluded when ``above`` is true).
            maximum: the largest allowed value (excluded when ``below`` is true).
            unit: the unit named in errors, like ``"seconds"``.
            example: a correct line shown in errors, like ``"duration_s = 60"``.
        """
        value = self.raw(name, default, example=example)
        return self.check_number(
            name, value, minimum, maximum, above=above, below=below, unit=unit, example=example
        )

    def check_number(
        self,
        name: str,
        value: Any,
        minimum: float | None,
        maximum: float | None,
        *,
        above: bool = False,
        below: bool = False,
        unit: str = "",
        example: str = "",
    ) -> float:
        """Check ``value`` read from key ``name`` as :meth:`number` does and return it."""
        wanted = _describe_bounds(minimum, maximum, above, below, unit)
        fix = f"; write e.g. {example}" if example else ""
        if not _is_number(value) or not math.isfinite(value):
            raise self.error(name, f"invalid value {value!r}: expected {wanted}{fix}")
        low_bad = minimum is not None and (value <= minimum if above else value < minimum)
        high_bad = maximum is not None and (value >= maximum if below else value > maximum)
        if low_bad or high_bad:
            raise self.error(name, f"invalid value {value!r}: expected {wanted}{fix}")
        return float(value)

    def integer(
        self, name: str, default: Any = REQUIRED, *, minimum: int | None = None, example: str = ""
    ) -> int:
        """Return ``name`` as an int not below ``minimum``."""
        value = self.raw(name, default, example=example)
        fix = f"; write e.g. {example}" if example else ""
        wanted = "an integer" if minimum is None else f"an integer >= {minimum}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"invalid value {value!r}: expected {wanted}{fix}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"invalid value {value!r}: expected {wanted}{fix}")
        return value

    def string(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        choices: Sequence[str] | None = None,
        example: str = "",
    ) -> str:
        """Return ``name`` as a non-empty string, one of ``choices`` if given."""
        value = self.raw(name, default, example=example)
        fix = f"; write e.g. {example}" if example else ""
        if not isinstance(value, str) or not value:
            raise self.error(name, f"invalid value {value!r}: expected a non-empty string{fix}")
        if choices is not None and value not in choices:
            options = ", ".join(repr(choice) for choice in choices)
            raise self.error(name, f"invalid value {value!r}: expected one of {options}")
        return value

    def optional_string(
        self, name: str, *, choices: Sequence[str] | None = None, example: str = ""
    ) -> str | None:
        """Return ``name`` as :meth:`string` does, or ``None`` when the key is missing."""
        if not self.has(name):
            self.raw(name, None)
            return None
        return self.string(name, choices=choices, example=example)

    def number_range(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        minimum: float = 0.0,
        unit: str = "",
        example: str = "",
    ) -> tuple[float, float]:
        """Return ``name`` as ``(low, high)`` with ``minimum <= low <= high``."""
        value = self.raw(name, default, example=example)
        fix = f"; write e.g. {example}" if example else ""
        wanted = f"[min, max] with {minimum:g} <= min <= max" + (f" ({unit})" if unit else "")
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(_is_number(item) and math.isfinite(item) for item in value)
        ):
            raise self.error(name, f"invalid value {value!r}: expected {wanted}{fix}")
        low, high = float(value[0]), float(value[1])
        if low < minimum or high < low:
            raise self.error(name, f"invalid value {list(value)!r}: expected {wanted}{fix}")
        return (low, high)

    def optional_number(
        self,
        name: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: bool = False,
        unit: str = "",
        example: str = "",
    ) -> float | None:
        """Return ``name`` as :meth:`number` does, or ``None`` when the key is missing."""
        if not self.has(name):
            self.raw(name, None)
            return None
        return self.number(
            name, minimum=minimum, maximum=maximum, above=above, unit=unit, example=example
        )

    def strings(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        choices: Sequence[str] | None = None,
        min_items: int = 0,
        example: str = "",
    ) -> tuple[str, ...]:
        """Return ``name`` as a tuple of distinct non-empty strings, each one of ``choices`` if given."""
        value = self.raw(name, default, example=example)
        return self.check_strings(
            name, value, choices=choices, min_items=min_items, example=example
        )

    def check_strings(
        self,
        name: str,
        value: Any,
        *,
        choices: Sequence[str] | None = None,
        min_items: int = 0,
        example: str = "",
    ) -> tuple[str, ...]:
        """Check ``value`` read from key ``name`` as :meth:`strings` does and return it."""
        fix = f"; write e.g. {example}" if example else ""
        wanted = "a list of non-empty strings" + (
            f" with at least {min_items} item(s)" if min_items else ""
        )
        if (
            not isinstance(value, list | tuple)
            or len(value) < min_items
            or not all(isinstance(item, str) and item for item in value)
        ):
            raise self.error(name, f"invalid value {value!r}: expected {wanted}{fix}")
        if len(set(value)) != len(value):
            raise self.error(name, f"invalid value {list(value)!r}: an item is repeated{fix}")
        if choices is not None:
            for item in value:
                if item not in choices:
                    options = ", ".join(repr(choice) for choice in choices)
                    raise self.error(
                        name, f"invalid item {item!r} in {list(value)!r}: expected one of {options}"
                    )
        return tuple(value)

    def table(self, name: str) -> Table:
        """Return sub-table ``name`` (empty when missing)."""
        value = self.raw(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"invalid value {value!r}: expected a table, like [{name}]")
        return Table(value, self.key(name), self._path)

    def tables(self, name: str, *, example: str = "") -> list[Table]:
        """Return array of tables ``name`` (empty when missing), like ``[[faults]]``."""
        value = self.raw(name, [])
        fix = f", like {example}" if example else ""
        if not isinstance(value, list):
            raise self.error(name, f"invalid value {value!r}: expected an array of tables{fix}")
        result = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.error(
                    f"{name}[{index}]", f"invalid value {item!r}: expected a table{fix}"
                )
            result.append(Table(item, f"{self.key(name)}[{index}]", self._path))
        return result

    def unread(self) -> list[str]:
        """Return the keys that no accessor has read, sorted."""
        return sorted(key for key in self._data if key not in self._read)

    def finish(self, known: Sequence[str] | None = None) -> None:
        """Raise for the first key that was never read (an unknown key or a typo)."""
        unknown = self.unread()
        if not unknown:
            return
        name = unknown[0]
        valid = sorted(known if known is not None else self._read)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        where = f"[{self._prefix}]" if self._prefix else "the top level"
        raise self.error(
            name,
            f"unknown key {name!r} in {where}{hint} Valid keys: {', '.join(valid) or 'none'}",
        )


def _describe_bounds(
    minimum: float | None, maximum: float | None, above: bool, below: bool, unit: str
) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if above else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<' if below else '<='} {maximum:g}")
    text = "a number" + (" " + " and ".join(parts) if parts else "")
    return text + (f" ({unit})" if unit else "")


def format_toml(data: Mapping[str, Any]) -> str:
    """Return ``data`` as TOML text: top-level values, then tables, then arrays of tables.

    Handles the value types scenarios use: strings, booleans, numbers, ``None``
    (left out), lists of those, tables (nested tables become ``[a.b]``), and
    lists of tables.

    Raises:
        TypeError: a value has another type.
    """
    lines = _format_table(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _format_table(data: Mapping[str, Any], prefix: str) -> list[str]:
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        name = f"{prefix}{key}"
        lines += ["", f"[{name}]"]
        lines += _format_table(table, f"{name}.")
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{prefix}{key}]]"]
            lines += _format_table(item, f"{prefix}{key}.")
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"cannot write {value!r} as a scenario value; use a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a scenario value")
