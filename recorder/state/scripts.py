"""The store's Lua scripts: each is one atomic step on Redis (real or fakeredis with lupa).

Python decides what a write changes (which sets gain or lose the id, which event to publish);
the scripts only check the condition that makes it safe (limits, or the stored version) and
apply everything at once, so no process ever sees a state without its index, set and event.
"""

from __future__ import annotations

# KEYS[1] state, KEYS[2] room index, KEYS[3] user index,
# KEYS[4..] the limited active sets in checking order (each also gains the id).
# ARGV[1] id, ARGV[2] state JSON, ARGV[3] state TTL, ARGV[4] index TTL,
# ARGV[5] events channel, ARGV[6] event JSON, ARGV[7] a node-local limit that already
# failed ('cpu') or '' (named only when the shared limits pass: they are checked first),
# then (name, limit) per limited set.
# Returns {'ok'}, {'exists'} or {'limit', name}.
ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
for i = 4, #KEYS do
  local j = 6 + 2 * (i - 3)
  if redis.call('SCARD', KEYS[i]) >= tonumber(ARGV[j + 1]) then
    return {'limit', ARGV[j]}
  end
end
if ARGV[7] ~= '' then
  return {'limit', ARGV[7]}
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
for i = 2, 3 do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[4])
end
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {'ok'}
"""

# KEYS[1] state, KEYS[2] the webhook outbox stream, KEYS[3 .. 2+ARGV[5]] sets that gain
# the id, the remaining KEYS lose it.
# ARGV[1] expected stored version, ARGV[2] new state JSON, ARGV[3] state TTL, ARGV[4] id,
# ARGV[5] number of sets that gain the id, ARGV[6] events channel, ARGV[7] event JSON or '',
# ARGV[8] webhook job JSON or '' (queued in the same step: a written change never loses
# its webhook).
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
for i = 3, #KEYS do
  if i <= 2 + gain then
    redis.call('SADD', KEYS[i], ARGV[4])
  else
    redis.call('SREM', KEYS[i], ARGV[4])
  end
end
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[6], ARGV[7])
end
if ARGV[8] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[8])
end
return 'ok'
"""
