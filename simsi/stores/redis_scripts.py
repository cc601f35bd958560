"""Lua scripts of the Redis alarm store; each runs atomically on the server.

Keys of one shard (see :mod:`simsi.stores.redis`):

- ``order``: sorted set, every score 0, members ``position`` =
  16 lowercase hex digits of ``fires_at_us`` + ``internal_id`` + NUL + ``alarm_id``;
- ``ids``: sorted set, every score 0, members ``internal_id`` + NUL + ``alarm_id``;
- one hash per alarm, named ``alarm key prefix`` + ``internal_id`` + NUL + ``alarm_id``,
  with the fields ``pos``, ``instance_id``, ``fires_at_us``, ``meta``, ``attempt``
  and ``revision``.

The page and instance scripts build alarm hash names from a prefix argument
instead of declaring them in KEYS. All keys of a shard share the ``{shard}``
hash tag, so they are in one Redis Cluster slot.

A hash without ``pos`` makes a script return an error starting with
``SIMSI_CORRUPT`` before it changes anything.
"""

from __future__ import annotations

CORRUPT_MARKER = "SIMSI_CORRUPT"

#: KEYS: order, ids, alarm hash. ARGV: id member, position, instance_id,
#: fires_at_us, meta, attempt, revision, if_revision ("" for none).
SET_ALARM = """
local old_pos = redis.call('HGET', KEYS[3], 'pos')
if not old_pos and redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('SIMSI_CORRUPT alarm hash has no pos field')
end
if ARGV[8] ~= '' then
  if not old_pos then return 0 end
  if redis.call('HGET', KEYS[3], 'revision') ~= ARGV[8] then return 0 end
end
if old_pos and old_pos ~= ARGV[2] then
  redis.call('ZREM', KEYS[1], old_pos)
end
redis.call('ZADD', KEYS[1], 0, ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('HSET', KEYS[3], 'pos', ARGV[2], 'instance_id', ARGV[3], 'fires_at_us', ARGV[4],
  'meta', ARGV[5], 'attempt', ARGV[6], 'revision', ARGV[7])
return 1
"""

#: KEYS: order, ids, alarm hash. ARGV: id member, if_revision ("" for none).
MARK_DONE = """
local old_pos = redis.call('HGET', KEYS[3], 'pos')
if not old_pos then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return redis.error_reply('SIMSI_CORRUPT alarm hash has no pos field')
  end
  return 0
end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[3], 'revision') ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], old_pos)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""

#: KEYS: order. ARGV: lexicographic minimum ("-" or "(" + position), limit,
#: alarm key prefix. Returns position, hash fields, position, hash fields, ...
GET_PAGE = """
local positions = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local result = {}
for _, position in ipairs(positions) do
  result[#result + 1] = position
  result[#result + 1] = redis.call('HGETALL', ARGV[3] .. string.sub(position, 17))
end
return result
"""

#: KEYS: ids. ARGV: lexicographic minimum, maximum, alarm key prefix.
#: Returns id member, hash fields, id member, hash fields, ...
GET_INSTANCE = """
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])
local result = {}
for _, id in ipairs(ids) do
  result[#result + 1] = id
  result[#result + 1] = redis.call('HGETALL', ARGV[3] .. id)
end
return result
"""
