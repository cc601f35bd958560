"""The checkpoint file of :func:`simsi.stores.reshard.reshard`.

The file is JSON: the format version, the reshard it belongs to (shard counts
and store), the old shard in progress, the last key done in it, whether the
pass finished, and the counts of every old shard so far. It is replaced
atomically after every page, so a crash leaves either the old or the new
checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsi.core.alarms import AlarmKey
from simsi.core.errors import ConfigError

#: Format version of the state file.
STATE_VERSION = 1


@dataclass(slots=True)
class ShardCounts:
    """Counts of what resharding did to one old shard.

    Attributes:
        scanned: alarms read from the shard (an alarm moved into a shard that is
            scanned later is read again there).
        moved: alarms copied to their new shard and removed from this one.
        conflicts: alarms copied whose old copy had changed or gone before its
            removal. Such an old copy is left as it is, and a second run moves it.
        finished: whether the shard's last page is done.
    """

    scanned: int = 0
    moved: int = 0
    conflicts: int = 0
    finished: bool = False


@dataclass(slots=True)
class ReshardState:
    """A checkpoint: the old shard in progress, the last key done in it and the counts."""

    shard: int = 0
    after: AlarmKey | None = None
    finished: bool = False
    counts: dict[int, ShardCounts] = field(default_factory=dict)


def read_state(path: Path, identity: dict[str, Any]) -> ReshardState:
    """Return the checkpoint in ``path``, or a fresh one when the file does not exist.

    Raises:
        ConfigError: the file is unreadable, invalid, or records another reshard than
            ``identity`` (its shard counts and store).
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ReshardState()
    except OSError as exc:
        raise ConfigError(
            f"failed to read reshard state file {str(path)!r}: {exc}; check its permissions "
            "or pass another state file"
        ) from exc
    try:
        data = json.loads(text)
        recorded = {name: data[name] for name in identity}
        if data["version"] != STATE_VERSION:
            raise ValueError(f"version {data['version']!r}, expected {STATE_VERSION}")
        after = data["after"]
        state = ReshardState(
            shard=int(data["shard"]),
            after=None if after is None else (int(after[0]), str(after[1]), str(after[2])),
            finished=bool(data["finished"]),
            counts={int(shard): ShardCounts(*values) for shard, values in data["counts"].items()},
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ConfigError(
            f"reshard state file {str(path)!r} is invalid ({exc}); delete it to start over"
        ) from exc
    if recorded != identity:
        raise ConfigError(
            f"reshard state file {str(path)!r} records {recorded}, not {identity}; finish that "
            "reshard, or delete the file or pass another state file to start this one"
        )
    return state


def write_state(path: Path, identity: dict[str, Any], state: ReshardState) -> None:
    """Replace the state file atomically: write a temporary file, fsync it, rename it."""
    data = {
        "version": STATE_VERSION,
        **identity,
        "shard": state.shard,
        "after": None if state.after is None else list(state.after),
        "finished": state.finished,
        "counts": {
            str(shard): [counts.scanned, counts.moved, counts.conflicts, counts.finished]
            for shard, counts in state.counts.items()
        },
    }
    directory = path.parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_handle)
    finally:
        os.close(directory_handle)
