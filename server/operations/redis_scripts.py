"""The Redis store's Lua scripts: every state change is one script, so it is atomic across servers.

Several servers share one Redis. A transition reads and writes several keys (the
record and the indexes it sits in), and two servers must never both claim a job
or both finish it, so each transition runs as a script: Redis runs one script at
a time. Time inside the scripts is Redis's own clock (TIME), the one clock all
servers agree on, so a lease expires at the same moment for all of them.

Keys, under a prefix P (one hash tag, so they would share a cluster slot):
  P op:<id>      HASH   the record (fields below)
  P ready        ZSET   QUEUED ids, scored by submit sequence (claim takes the lowest)
  P tq:<tenant>  ZSET   the tenant's QUEUED ids (its queued-operations quota)
  P leases       ZSET   RUNNING ids, scored by lease expiry
  P done:<state> ZSET   done ids in SUCCEEDED, FAILED, CANCELLED, scored by end time (expire())
  P t:<tenant>   ZSET   the tenant's ids, scored by submit sequence (list(), newest first)
  P idem         HASH   "<len(tenant)>:<tenant><request_id>" -> id (idempotent submit)
  P own          HASH   id -> that same key (to clean the indexes when the record is gone)
  P seq          STRING submit sequence
  channel P done        the id of every record that became done or was deleted (wait())
Record fields: id tenant rid state spec trace ctime stime etime attempts result error cancel
worker lease seq (absent = None / "" / False).

Every script takes ARGV[1] = P and ARGV[2] = the result TTL in milliseconds (0: none); done
records get that TTL (Redis removes them even if no server calls expire()).
"""

from __future__ import annotations

_COMMON = """
local P = ARGV[1]
local TTL = tonumber(ARGV[2])
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.6f', x) end
local DONE = {'SUCCEEDED', 'FAILED', 'CANCELLED'}
local function rec(id) return redis.call('HGETALL', P .. 'op:' .. id) end
local function owner(own)
  local n, rest = string.match(own, '^(%d+):(.*)$')
  n = tonumber(n)
  return string.sub(rest, 1, n), string.sub(rest, n + 1)
end
local function to_done(id, key, state, t)
  local tenant = redis.call('HGET', key, 'tenant')
  redis.call('HSET', key, 'state', state, 'etime', fmt(t))
  redis.call('HDEL', key, 'worker', 'lease')
  redis.call('ZREM', P .. 'ready', id)
  redis.call('ZREM', P .. 'tq:' .. tenant, id)
  redis.call('ZREM', P .. 'leases', id)
  redis.call('ZADD', P .. 'done:' .. state, t, id)
  if TTL > 0 then redis.call('PEXPIRE', key, TTL) end
  redis.call('PUBLISH', P .. 'done', id)
end
local function unindex(id)
  local own = redis.call('HGET', P .. 'own', id)
  if own then
    local tenant, rid = owner(own)
    redis.call('ZREM', P .. 't:' .. tenant, id)
    redis.call('ZREM', P .. 'tq:' .. tenant, id)
    if rid ~= '' and redis.call('HGET', P .. 'idem', own) == id then
      redis.call('HDEL', P .. 'idem', own)
    end
    redis.call('HDEL', P .. 'own', id)
  end
  redis.call('ZREM', P .. 'ready', id)
  redis.call('ZREM', P .. 'leases', id)
  for _, state in ipairs(DONE) do redis.call('ZREM', P .. 'done:' .. state, id) end
end
"""

# ARGV: P TTL tenant request_id spec trace max_queued new_id tenant_max_queued (-1: none)
# -> {1, record} created | {0, record} the earlier one for this request_id | {-1} queue full
# | {-2, n} the tenant has n queued, its limit
SUBMIT = (
    _COMMON
    + """
local tenant, rid = ARGV[3], ARGV[4]
local own = string.len(tenant) .. ':' .. tenant .. rid
if rid ~= '' then
  local old = redis.call('HGET', P .. 'idem', own)
  if old then
    local r = rec(old)
    if #r > 0 then return {0, r} end
  end
end
local tenant_max = tonumber(ARGV[9])
if tenant_max >= 0 then
  local mine = redis.call('ZCARD', P .. 'tq:' .. tenant)
  if mine >= tenant_max then return {-2, mine} end
end
local max_queued = tonumber(ARGV[7])
if max_queued > 0 and redis.call('ZCARD', P .. 'ready') >= max_queued then return {-1} end
local id = ARGV[8]
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', P .. 'op:' .. id, 'id', id, 'tenant', tenant, 'rid', rid, 'state', 'QUEUED',
  'spec', ARGV[5], 'trace', ARGV[6], 'ctime', fmt(now()), 'attempts', 0, 'cancel', 0, 'seq', seq)
redis.call('ZADD', P .. 'ready', seq, id)
redis.call('ZADD', P .. 'tq:' .. tenant, seq, id)
redis.call('ZADD', P .. 't:' .. tenant, seq, id)
redis.call('HSET', P .. 'own', id, own)
if rid ~= '' then redis.call('HSET', P .. 'idem', own, id) end
return {1, rec(id)}
"""
)

# ARGV: P TTL worker lease_seconds max_attempts -> {expired leases seen, record | false}
# Expired leases first (they are older than anything queued), then the oldest QUEUED. Each
# server counts the expiries its own claims found, so the servers' counts add up.
CLAIM = (
    _COMMON
    + """
local t = now()
local worker, lease, max_attempts = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local function take(id, key)
  local expires = t + lease
  redis.call('HSET', key, 'state', 'RUNNING', 'worker', worker, 'lease', fmt(expires),
    'stime', fmt(t))
  redis.call('HINCRBY', key, 'attempts', 1)
  redis.call('ZREM', P .. 'ready', id)
  redis.call('ZREM', P .. 'tq:' .. redis.call('HGET', key, 'tenant'), id)
  redis.call('ZADD', P .. 'leases', expires, id)
  return rec(id)
end
local seen = 0
for _ = 1, 100 do
  local expired = redis.call('ZRANGE', P .. 'leases', '-inf', fmt(t), 'BYSCORE', 'LIMIT', 0, 1)
  if #expired == 0 then break end
  local id = expired[1]
  local key = P .. 'op:' .. id
  local f = redis.call('HMGET', key, 'state', 'cancel', 'attempts')
  if f[1] ~= 'RUNNING' then
    redis.call('ZREM', P .. 'leases', id)
  else
    seen = seen + 1
    if f[2] == '1' then
      to_done(id, key, 'CANCELLED', t)
    elseif tonumber(f[3]) >= max_attempts then
      to_done(id, key, 'FAILED', t)
    else
      return {seen, take(id, key)}
    end
  end
end
for _ = 1, 100 do
  local queued = redis.call('ZRANGE', P .. 'ready', 0, 0)
  if #queued == 0 then return {seen, false} end
  local id = queued[1]
  local key = P .. 'op:' .. id
  if redis.call('HGET', key, 'state') == 'QUEUED' then return {seen, take(id, key)} end
  redis.call('ZREM', P .. 'ready', id)
end
return {seen, false}
"""
)

# ARGV: P TTL id worker lease_seconds -> record | nil (lease lost)
RENEW = (
    _COMMON
    + """
local id, key = ARGV[3], P .. 'op:' .. ARGV[3]
local f = redis.call('HMGET', key, 'state', 'worker')
if f[1] ~= 'RUNNING' or f[2] ~= ARGV[4] then return false end
local expires = now() + tonumber(ARGV[5])
redis.call('HSET', key, 'lease', fmt(expires))
redis.call('ZADD', P .. 'leases', expires, id)
return rec(id)
"""
)

# ARGV: P TTL id worker state has_result result has_error error -> 1 | 0 (lease lost)
FINISH = (
    _COMMON
    + """
local id, key = ARGV[3], P .. 'op:' .. ARGV[3]
local f = redis.call('HMGET', key, 'state', 'worker')
if f[1] ~= 'RUNNING' or f[2] ~= ARGV[4] then return 0 end
if ARGV[6] == '1' then redis.call('HSET', key, 'result', ARGV[7]) end
if ARGV[8] == '1' then redis.call('HSET', key, 'error', ARGV[9]) end
to_done(id, key, ARGV[5], now())
return 1
"""
)

# ARGV: P TTL id worker -> 'QUEUED' (back at its old place) | 'CANCELLED' (asked meanwhile)
# | false (not the worker's)
RELEASE = (
    _COMMON
    + """
local id, key = ARGV[3], P .. 'op:' .. ARGV[3]
local f = redis.call('HMGET', key, 'state', 'worker', 'cancel', 'seq', 'attempts', 'tenant')
if f[1] ~= 'RUNNING' or f[2] ~= ARGV[4] then return false end
if f[3] == '1' then
  to_done(id, key, 'CANCELLED', now())
  return 'CANCELLED'
end
local attempts = tonumber(f[5]) - 1
if attempts < 0 then attempts = 0 end
redis.call('HSET', key, 'state', 'QUEUED', 'attempts', attempts)
redis.call('HDEL', key, 'worker', 'lease', 'stime')
redis.call('ZREM', P .. 'leases', id)
redis.call('ZADD', P .. 'ready', f[4], id)
redis.call('ZADD', P .. 'tq:' .. f[6], f[4], id)
return 'QUEUED'
"""
)

# ARGV: P TTL tenant id -> record | nil (absent or another tenant's)
CANCEL = (
    _COMMON
    + """
local id, key = ARGV[4], P .. 'op:' .. ARGV[4]
local f = redis.call('HMGET', key, 'state', 'tenant')
if not f[1] or f[2] ~= ARGV[3] then return false end
if f[1] == 'QUEUED' then
  to_done(id, key, 'CANCELLED', now())
elseif f[1] == 'RUNNING' then
  redis.call('HSET', key, 'cancel', 1)
end
return rec(id)
"""
)

# ARGV: P TTL tenant id -> 1 | 0 (absent or another tenant's)
DELETE = (
    _COMMON
    + """
local id, key = ARGV[4], P .. 'op:' .. ARGV[4]
if redis.call('HGET', key, 'tenant') ~= ARGV[3] then return 0 end
unindex(id)
redis.call('DEL', key)
redis.call('PUBLISH', P .. 'done', id)
return 1
"""
)

# ARGV: P TTL older_than limit -> how many done records were deleted (at most limit)
EXPIRE = (
    _COMMON
    + """
local removed, limit = 0, tonumber(ARGV[4])
for _, state in ipairs(DONE) do
  local ids = redis.call('ZRANGE', P .. 'done:' .. state, '-inf', '(' .. ARGV[3], 'BYSCORE',
    'LIMIT', 0, limit - removed)
  for _, id in ipairs(ids) do
    unindex(id)
    redis.call('DEL', P .. 'op:' .. id)
  end
  removed = removed + #ids
  if removed >= limit then break end
end
return removed
"""
)

# ARGV: P TTL -> {depth, running, oldest queued age, SUCCEEDED, FAILED, CANCELLED}
STATS = (
    _COMMON
    + """
local age = 0
local oldest = redis.call('ZRANGE', P .. 'ready', 0, 0)
if #oldest > 0 then
  local created = redis.call('HGET', P .. 'op:' .. oldest[1], 'ctime')
  if created then age = math.max(0, now() - tonumber(created)) end
end
local answer = {redis.call('ZCARD', P .. 'ready'), redis.call('ZCARD', P .. 'leases'), fmt(age)}
for _, state in ipairs(DONE) do table.insert(answer, redis.call('ZCARD', P .. 'done:' .. state)) end
return answer
"""
)
