"""The store's Lua scripts: each is one atomic step on Redis (real or fakeredis with lupa).

Python decides what a write changes (which sets gain or lose the id, which event to publish);
the scripts only check the condition that makes it safe (limits, or the stored version) and
apply everything at once, so no process ever sees a state without its index, set and event.
"""

from __future__ import annotations

# KEYS[1] state, KEYS[2] room index, KEYS[3] user index, KEYS[4] the user's recent starts,
# KEYS[5..] the limited active sets in checking order (each also gains the id).
# ARGV[1] id, ARGV[2] state JSON, ARGV[3] state TTL, ARGV[4] index TTL,
# ARGV[5] events channel, ARGV[6] event JSON, ARGV[7] a node-local limit that already
# failed ('cpu') or '' (named only when the shared limits pass: they are checked first),
# ARGV[8] starts allowed per window (0: not limited), ARGV[9] now (unix ms), ARGV[10] the
# window (ms), ARGV[11] a node-local limit checked after the start rate ('max_rooms') or '',
# then (name, limit) per limited set.
# Returns {'ok'}, {'exists'} or {'limit', name[, ms until a start is allowed again]}.
# A refused start is not counted in the rate: only admitted ones enter KEYS[4].
ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
for i = 5, #KEYS do
  local j = 12 + 2 * (i - 5)
  if redis.call('SCARD', KEYS[i]) >= tonumber(ARGV[j + 1]) then
    return {'limit', ARGV[j]}
  end
end
if ARGV[7] ~= '' then
  return {'limit', ARGV[7]}
end
local rate = tonumber(ARGV[8])
local now = tonumber(ARGV[9])
local window = tonumber(ARGV[10])
if rate > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  if redis.call('ZCARD', KEYS[4]) >= rate then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {'limit', 'start_rate', tostring(tonumber(oldest[2]) + window - now)}
  end
end
if ARGV[11] ~= '' then
  return {'limit', ARGV[11]}
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
for i = 2, 3 do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[4])
end
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
end
if rate > 0 then
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[4], window)
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {'ok'}
"""

# KEYS[1] the user's slots of one kind (hash: slot id -> node id).
# ARGV[1] slot id, ARGV[2] this node's id, ARGV[3] the cap, ARGV[4] the node keys' prefix.
# Slots of nodes whose heartbeat key expired are dropped before counting (this node is
# alive: it is the one asking). Returns 1 if the slot was claimed, 0 if the cap is reached.
# The node keys are read by name, not passed as KEYS: the store is one Redis (or a
# Sentinel-managed primary), never a cluster.
CLAIM_SLOT = """
local alive = {[ARGV[2]] = true}
local count = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local node = fields[i + 1]
  if alive[node] == nil then
    alive[node] = redis.call('EXISTS', ARGV[4] .. node) == 1
  end
  if alive[node] then
    count = count + 1
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
if count >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS[1] state, KEYS[2] the webhook outbox stream, KEYS[3] the recording's history list,
# KEYS[4 .. 3+ARGV[5]] sets that gain the id, the remaining KEYS lose it.
# ARGV[1] expected stored version, ARGV[2] new state JSON, ARGV[3] state TTL, ARGV[4] id,
# ARGV[5] number of sets that gain the id, ARGV[6] events channel, ARGV[7] event JSON or '',
# ARGV[8] webhook job JSON or '' (queued in the same step: a written change never loses
# its webhook), ARGV[9] entries the history keeps (an event is also appended there, so a
# timeline never misses a written change).
# Returns 'ok', 'missing' or 'conflict'.
UPDATE = """
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 'missing'
end
if cjson.decode(raw)['version'] ~= tonumber(ARGV[1]) then
  return 'conflict'
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
local gain = tonumber(ARGV[5])
for i = 4, #KEYS do
  if i <= 3 + gain then
    redis.call('SADD', KEYS[i], ARGV[4])
  else
    redis.call('SREM', KEYS[i], ARGV[4])
  end
end
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[6], ARGV[7])
  redis.call('RPUSH', KEYS[3], ARGV[7])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[9]), -1)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
if ARGV[8] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[8])
end
return 'ok'
"""
