import base64
import hashlib

import pytest

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement, expand_hosts, internal_id, murmur2


def test_expand_range():
    assert expand_hosts("host-{0..1}") == ["host-0", "host-1"]


def test_expand_range_with_suffix():
    assert expand_hosts("host-{0..3}-abc") == [
        "host-0-abc",
        "host-1-abc",
        "host-2-abc",
        "host-3-abc",
    ]


def test_expand_without_range_is_one_host():
    assert expand_hosts("solo.example") == ["solo.example"]


def test_expand_offset_range():
    assert expand_hosts("h{3..5}") == ["h3", "h4", "h5"]


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "non-empty"),
        ("host-{2..0}", "reversed range 2..0"),
        ("host-{0..1}-{0..1}", "2 ranges"),
        ("host-{0..}", "malformed"),
        ("host-{a..b}", "malformed"),
        ("host {0..1}", "malformed"),
        ("host-{0-2}", "malformed"),
    ],
)
def test_expand_rejects_malformed(pattern, fragment):
    with pytest.raises(ConfigError, match="host pattern") as info:
        expand_hosts(pattern)
    assert fragment in str(info.value)
    if pattern:
        assert repr(pattern) in str(info.value)


def test_murmur2_matches_kafka_vectors():
    # Values from Kafka's own murmur2 tests, read as unsigned 32-bit integers.
    assert murmur2(b"21") == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == (-985981536) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-longer-string") == (-1486304829) & 0xFFFFFFFF
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == (-58897971) & 0xFFFFFFFF
    assert murmur2(b"abc") == 479470107


def test_murmur2_is_unsigned_32_bit():
    for i in range(200):
        value = murmur2(f"key-{i}".encode())
        assert 0 <= value < 2**32


def test_internal_id_is_unpadded_base32_sha256():
    expected = base64.b32encode(hashlib.sha256(b"user-42").digest()).decode().rstrip("=")
    assert internal_id("user-42") == expected
    assert len(internal_id("user-42")) == 52
    assert "=" not in internal_id("")


def test_routing_matches_go_library():
    placement = Placement("host-{0..1}", 1024)
    assert placement.owner("wrgh9uierhguhrhgierhughe") == "host-0"


def test_shard_maps_round_robin_to_hosts():
    placement = Placement("host-{0..2}", 10)
    assert [placement.owner_of_shard(s) for s in range(10)] == [
        "host-0", "host-1", "host-2", "host-0", "host-1",
        "host-2", "host-0", "host-1", "host-2", "host-0",
    ]  # fmt: skip
    assert placement.shards_of("host-1") == [1, 4, 7]
    assert placement.shards_of("host-0") == [0, 3, 6, 9]


def test_shard_of_uses_murmur_of_internal_id():
    placement = Placement("host-{0..3}", 64)
    for name in ("a", "b", "user:1", "ünïcode"):
        assert placement.shard_of(name) == murmur2(internal_id(name).encode()) % 64


def test_shards_cover_every_shard_once():
    placement = Placement("node-{0..4}", 37)
    owned = sorted(s for host in placement.hosts for s in placement.shards_of(host))
    assert owned == list(range(37))


def test_fewer_shards_than_hosts_rejected():
    with pytest.raises(ConfigError, match="shards=2 is fewer than the 3 hosts"):
        Placement("host-{0..2}", 2)


def test_unknown_host_rejected():
    placement = Placement("host-{0..2}", 8)
    with pytest.raises(ConfigError, match="'host-9' is not in the hosts pattern"):
        placement.shards_of("host-9")


def test_non_integer_shards_rejected():
    with pytest.raises(ConfigError, match="shards must be an integer"):
        Placement("host-0", "8")  # type: ignore[arg-type]


def test_duplicate_hosts_rejected():
    with pytest.raises(ConfigError, match="unique"):
        Placement(["a", "a"], 4)


def test_out_of_range_shard_rejected():
    placement = Placement("host-{0..1}", 4)
    with pytest.raises(ConfigError, match=r"shard 4 is outside 0\.\.3"):
        placement.owner_of_shard(4)


def test_placements_compare_by_value():
    assert Placement("host-{0..1}", 4) == Placement(["host-0", "host-1"], 4)
    assert Placement("host-{0..1}", 4) != Placement("host-{0..1}", 8)


def test_lone_surrogate_id_rejected():
    with pytest.raises(ConfigError, match="lone surrogate at index 2"):
        internal_id("ab\ud800")
