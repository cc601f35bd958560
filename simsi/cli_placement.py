"""``simsi placement``: show the owner, shard and internal id of instance ids."""

from __future__ import annotations

import argparse
import json

from simsi.core.placement import Placement, internal_id


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``placement`` arguments."""
    parser.add_argument("--hosts", required=True, help="host pattern, like 'host-{0..2}'")
    parser.add_argument("--shards", type=int, required=True, help="number of shards")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("instance_ids", nargs="+", metavar="ID", help="instance ids to place")


def run(args: argparse.Namespace) -> int:
    """Print the placement of each instance id."""
    placement = Placement(args.hosts, args.shards)
    for instance_id in args.instance_ids:
        row = {
            "instance_id": instance_id,
            "owner": placement.owner(instance_id),
            "shard": placement.shard_of(instance_id),
            "internal_id": internal_id(instance_id),
        }
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{instance_id}\t{row['owner']}\tshard {row['shard']}\t{row['internal_id']}")
    return 0
