"""The store's Lua scripts: each is one atomic step on Redis (real or fakeredis with lupa).

Python decides what a write changes (which sets gain or lose the id, which event to publish);
the scripts only check the condition that makes it safe (limits, or the stored version) and
apply everything at once, so no process ever sees a state without its index, set and event.
"""

from __future__ import annotations

# The server's run id, read inside a script (INFO is allowed in scripts since Redis 7): it
# changes when the server restarts and differs on the replica a failover promotes. The
# embedded store (fakeredis) has no INFO: its data lives as long as its process.
_RUN_ID = """
local function server_run_id()
  local info = redis.pcall('INFO', 'server')
  if type(info) ~= 'string' then
    return 'embedded'
  end
  return string.match(info, 'run_id:(%w+)') or 'embedded'
end
"""

# KEYS[1] state, KEYS[2] room index, KEYS[3] user index, KEYS[4] the user's recent starts,
# KEYS[5] the store's epoch, KEYS[6..] the limited active sets in checking order (each also
# gains the id).
# ARGV[1] id, ARGV[2] state JSON, ARGV[3] state TTL, ARGV[4] index TTL,
# ARGV[5] events channel, ARGV[6] event JSON, ARGV[7] a node-local limit that already
# failed ('cpu') or '' (named only when the shared limits pass: they are checked first),
# ARGV[8] starts allowed per window (0: not limited), ARGV[9] now (unix ms), ARGV[10] the
# window (ms), ARGV[11] a node-local limit checked after the start rate ('max_rooms') or '',
# ARGV[12] '1' when admission waits for the epoch (recorderd: nothing is admitted while the
# store has no epoch, or one a server with another run id wrote (restarted, or failed over
# and no node has noticed yet), or until its `gate_until`, the nodes' re-assertion after a
# loss of data, has passed; docs/operations.md, "When the store fails"), then (name, limit)
# per limited set.
# Returns {'ok'}, {'exists'}, {'restoring', ms until the gate opens ('0': no epoch yet)} or
# {'limit', name[, ms until a start is allowed again]}.
# A refused start is not counted in the rate: only admitted ones enter KEYS[4].
ADMIT = _RUN_ID + """
if ARGV[12] == '1' then
  local epoch = redis.call('GET', KEYS[5])
  if not epoch then
    return {'restoring', '0'}
  end
  epoch = cjson.decode(epoch)
  if epoch['run_id'] ~= server_run_id() then
    return {'restoring', '0'}
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local gate = tonumber(epoch['gate_until']) or 0
  if gate > now then
    return {'restoring', tostring(gate - now)}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
for i = 6, #KEYS do
  local j = 13 + 2 * (i - 6)
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
for i = 6, #KEYS do
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

# KEYS[1] the epoch. ARGV[1] a fresh epoch id, ARGV[2] the epoch id this node last saw
# ('' when it just started), ARGV[3] the gate (ms).
# The epoch (JSON {id, run_id, gate_until}: unix ms by the server's clock) says which data
# the store holds: it is written anew when missing (the store lost its data, or is new) or
# when written by a server whose run id changed (a restart or a failover may have lost
# writes). Admission waits until `gate_until` (ADMIT), the nodes re-assert meanwhile. A
# missing epoch seen by a node that knew none is a new store: no gate. A node that finds an
# epoch other than the one it knew lost data too: it moves the gate to at least now + gate.
# Returns {the epoch JSON now stored, the server's time in unix ms}.
EPOCH = _RUN_ID + """
local run_id = server_run_id()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gate_ms = tonumber(ARGV[3])
local raw = redis.call('GET', KEYS[1])
local epoch = nil
if raw then
  epoch = cjson.decode(raw)
end
if epoch and epoch['run_id'] == run_id then
  if ARGV[2] == '' or epoch['id'] == ARGV[2] then
    return {raw, tostring(now)}
  end
  if (tonumber(epoch['gate_until']) or 0) < now + gate_ms then
    epoch['gate_until'] = now + gate_ms
    raw = cjson.encode(epoch)
    redis.call('SET', KEYS[1], raw)
  end
  return {raw, tostring(now)}
end
local gate = 0
if epoch or ARGV[2] ~= '' then
  gate = now + gate_ms
end
raw = cjson.encode({id = ARGV[1], run_id = run_id, gate_until = gate})
redis.call('SET', KEYS[1], raw)
return {raw, tostring(now)}
"""

# KEYS[1] state, KEYS[2] room index, KEYS[3] user index, KEYS[4] the webhook outbox stream,
# KEYS[5..4+ARGV[6]] sets that hold the id (active sets or `processing:`), the remaining
# KEYS sets that must not.
# ARGV[1] id, ARGV[2] the state JSON this node knows, ARGV[3] its version, ARGV[4] state TTL,
# ARGV[5] index TTL, ARGV[6] number of sets that hold the id, then (version, webhook job
# JSON) pairs of the status changes this node wrote.
# The node re-asserts what it runs (docs/operations.md, "When the store fails"): the state
# is written only when the stored one is missing or older (never over a newer version; then
# nothing is touched: whoever wrote it keeps the sets in step), and the webhook jobs of the
# versions the store lost are queued again with their own ids. Returns {written, stored
# version, jobs queued again}.
REASSERT = """
local raw = redis.call('GET', KEYS[1])
local stored = -1
if raw then
  stored = tonumber(cjson.decode(raw)['version'])
end
local version = tonumber(ARGV[3])
if stored > version then
  return {0, stored, 0}
end
local written = 0
if stored < version then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
  written = 1
end
for i = 2, 3 do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[5])
end
local hold = tonumber(ARGV[6])
for i = 5, #KEYS do
  if i <= 4 + hold then
    redis.call('SADD', KEYS[i], ARGV[1])
  else
    redis.call('SREM', KEYS[i], ARGV[1])
  end
end
local queued = 0
for j = 7, #ARGV, 2 do
  if tonumber(ARGV[j]) > stored then
    redis.call('XADD', KEYS[4], '*', 'job', ARGV[j + 1])
    queued = queued + 1
  end
end
return {written, stored, queued}
"""
