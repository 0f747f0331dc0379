"""The Lua scripts: every state change of a task is one atomic script on Redis' clock.

Each script gets ``KEYS[1] = "<prefix>:{<queue>}:d"`` (the queue's record hash) and
derives the queue's other keys from it, so every key a script touches shares the
queue's hash tag and lives in one Redis Cluster slot. Time is always Redis ``TIME``
(milliseconds), never a worker's clock.

A record is one hash field (the task id) holding ``header ";" body``. The header is
comma-separated, trailing defaults omitted: 14 scalar fields (listed in :mod:`._lua`),
then the byte lengths of the 8 strings that follow the payload in the body. A queued
task with a 100-byte payload is about 120 bytes, which keeps its memory under 200
bytes (docs/redis.md, "Memory").
"""

from __future__ import annotations

from typing import Final

from ._lua import PRELUDE

__all__ = [
    "ACK",
    "CANCEL",
    "CLAIM",
    "DEAD_LETTER",
    "ENQUEUE",
    "FINISH_CANCELLED",
    "GET",
    "LIST",
    "NACK",
    "PURGE_DEAD",
    "PURGE_RESULTS",
    "RECLAIM",
    "RELEASE",
    "RENEW",
    "REQUEUE_DEAD",
    "STATS",
]

# KEYS[1]; ARGV: count, then per task: id, name, priority, run_at ms ("" = now),
# unique key, unique scope, unique ttl ms, payload. Returns id, created per task.
ENQUEUE: Final = (
    PRELUDE
    + r"""
local now = now_ms()
local out, woke, i = {}, false, 2
for _ = 1, tonumber(ARGV[1]) do
  local id, name, pr, ra = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local uk, us, ut, payload = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local existing = nil
  local ukey = P .. 'u:' .. uk
  if uk ~= '' then
    local held = redis.call('GET', ukey)
    if held and redis.call('HEXISTS', D, held) == 1 then existing = held end
  end
  if not existing and redis.call('HEXISTS', D, id) == 1 then existing = id end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local t = {s = {'', '', '', '', '', '', '', ''}, p = payload}
    for j = 1, NF do t[j] = '' end
    t[PR] = pr
    t[EN] = now
    t[NM] = intern(name)
    local due = tonumber(ra)
    if due and due > now then
      t[ST] = 's'
      t[RA] = ra
      redis.call('ZADD', P .. 's', due, id)
    else
      t[ST] = 'q'
      if due then t[RA] = ra end
      push_ready(id, t, false)
      woke = true
    end
    if uk ~= '' then
      t.s[UK] = uk
      if us ~= 'r' then t[US] = us end
      if us == 'd' then
        t[UT] = ut
        redis.call('SET', ukey, id)
      elseif tonumber(ut) > 0 then
        t[UT] = ut
        redis.call('SET', ukey, id, 'PX', ut)
      else
        redis.call('SET', ukey, id)
      end
    end
    save(id, t)
    count(nil, t[ST])
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if woke then signal() end
return out
"""
)

# KEYS[1]; ARGV: limit, lease ms, worker, promote limit, token nonce.
# Returns {lease until ms, now ms, next scheduled ms or '', id, token, name, record, ...}.
CLAIM: Final = (
    PRELUDE
    + r"""
local now = now_ms()
local limit, lease, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
promote(now, tonumber(ARGV[4]))
local out = {now + lease, now, ''}
local names, got, budget = {}, 0, limit + 1000
while got < limit and budget > 0 do
  local top = redis.call('ZRANGE', P .. 'p', 0, 0)
  if #top == 0 then break end
  local key = P .. 'r:' .. top[1]
  local ids = redis.call('LPOP', key, math.min(limit - got, budget))
  if not ids or redis.call('LLEN', key) == 0 then redis.call('ZREM', P .. 'p', top[1]) end
  if ids then
    budget = budget - #ids
    for _, id in ipairs(ids) do
      local raw = redis.call('HGET', D, id)
      local t = dec(raw)
      local why, ready = nil, false
      if raw and t == nil then
        why = 'undecodable record'
      elseif t and not (LIVE[t[ST]] or DONE[t[ST]] or t[ST] == 'D') then
        why = 'unknown status ' .. t[ST]
      elseif t and t[ST] == 'q' then
        why = problem(t, names)
        ready = why == nil
      end
      if why then
        bury(id, raw, t, 'malformed record: ' .. why, now)
      elseif ready then
        local token = redis.call('INCR', P .. 'c') .. '.' .. ARGV[5]
        t[ST] = 'r'
        t[DL] = num(t, DL, 0) + 1
        t[SA] = now
        t.s[TK] = token
        t.s[WK] = worker
        if t[US] == 'q' then drop_unique(id, t) end
        local rec = enc(t)
        redis.call('HSET', D, id, rec)
        redis.call('ZADD', P .. 'l', now + lease, id)
        count('q', 'r')
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = names[t[NM]]
        out[#out + 1] = rec
        got = got + 1
      end
    end
  end
end
if redis.call('ZCARD', P .. 'p') > 0 then signal() end
local first = redis.call('ZRANGE', P .. 's', 0, 0, 'WITHSCORES')
if #first > 0 then out[3] = first[2] end
return out
"""
)

# KEYS[1]; ARGV: id, token, lease ms. Returns {0} (lost) or {1|2 (cancel requested), until ms}.
RENEW: Final = (
    PRELUDE
    + r"""
local t = owned(ARGV[1], ARGV[2])
if not t then return {0} end
local until_ms = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', P .. 'l', until_ms, ARGV[1])
if t[CR] == '1' then return {2, until_ms} end
return {1, until_ms}
"""
)

# KEYS[1]; ARGV: results ttl ms, then per ack: id, token, has result (0/1), result.
ACK: Final = (
    PRELUDE
    + r"""
local now, ttl = now_ms(), tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 4 do
  local id, token = ARGV[i], ARGV[i + 1]
  local t = owned(id, token)
  if t then
    if ARGV[i + 2] == '1' then t.s[RS] = ARGV[i + 3] end
    t.s[ET], t.s[EM], t.s[EB] = '', '', ''
    finish(id, t, 'S', now, ttl)
    out[#out + 1] = 1
  else
    local done = dec(redis.call('HGET', D, id))
    if done and done[ST] == 'S' and done.s[TK] == token and token ~= '' then
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
"""
)

# KEYS[1]; ARGV: results ttl ms, id, token, retry at ms ('' = final), final status code,
# error type, error message, error traceback. Returns 1 or 0.
NACK: Final = (
    PRELUDE
    + r"""
local now, ttl, id, token = now_ms(), tonumber(ARGV[1]), ARGV[2], ARGV[3]
local t = owned(id, token)
if not t then
  local seen = dec(redis.call('HGET', D, id))
  if seen and seen.s[TK] == token and token ~= '' and seen[ST] ~= 'r' and seen[ST] ~= 'S'
     and seen[ST] ~= 'D' and seen.s[ET] ~= '' then
    return 1
  end
  return 0
end
t.s[ET], t.s[EM], t.s[EB] = ARGV[6], ARGV[7], ARGV[8]
if t[CR] == '1' then
  finish(id, t, 'C', now, ttl)
elseif ARGV[4] == '' then
  finish(id, t, ARGV[5], now, ttl)
else
  local due = tonumber(ARGV[4])
  redis.call('ZREM', P .. 'l', id)
  t[AT] = num(t, AT, 1) + 1
  t[RA] = ARGV[4]
  if due > now then
    t[ST] = 'y'
    redis.call('ZADD', P .. 's', due, id)
    count('r', 'y')
  else
    t[ST] = 'q'
    push_ready(id, t, false)
    count('r', 'q')
    signal()
  end
  save(id, t)
end
return 1
"""
)

# KEYS[1]; ARGV: results ttl ms, id, token. Back to the front of its queue, no penalty.
RELEASE: Final = (
    PRELUDE
    + r"""
local now, ttl, id = now_ms(), tonumber(ARGV[1]), ARGV[2]
local t = owned(id, ARGV[3])
if not t then return 0 end
if t[CR] == '1' then
  finish(id, t, 'C', now, ttl)
  return 1
end
redis.call('ZREM', P .. 'l', id)
t[ST] = 'q'
t.s[TK] = ''
t[RA] = now
save(id, t)
push_ready(id, t, true)
count('r', 'q')
signal()
return 1
"""
)

# KEYS[1]; ARGV: results ttl ms, id, token. The owner honoured a cancel request.
FINISH_CANCELLED: Final = (
    PRELUDE
    + r"""
local t = owned(ARGV[2], ARGV[3])
if not t then return 0 end
finish(ARGV[2], t, 'C', now_ms(), tonumber(ARGV[1]))
return 1
"""
)

# KEYS[1]; ARGV: (unused ttl), id, token, reason.
DEAD_LETTER: Final = (
    PRELUDE
    + r"""
local t = owned(ARGV[2], ARGV[3])
if not t then
  local seen = dec(redis.call('HGET', D, ARGV[2]))
  if seen and seen[ST] == 'D' and seen.s[TK] == ARGV[3] and ARGV[3] ~= '' then return 1 end
  return 0
end
t.s[DR] = ARGV[4]
finish(ARGV[2], t, 'D', now_ms(), 0)
return 1
"""
)

# KEYS[1]; ARGV: results ttl ms, id. Returns cancelled | requested | finished | missing.
CANCEL: Final = (
    PRELUDE
    + r"""
local id = ARGV[2]
local t = dec(redis.call('HGET', D, id))
if not t then return 'missing' end
if t[ST] == 'r' then
  t[CR] = '1'
  save(id, t)
  return 'requested'
end
if LIVE[t[ST]] then
  finish(id, t, 'C', now_ms(), tonumber(ARGV[1]))
  return 'cancelled'
end
return 'finished'
"""
)

# KEYS[1]; ARGV: limit, max worker lost, results ttl ms (0 = keep).
# Returns {requeued ids, dead ids, cancelled ids, expired count, more (0/1)}.
RECLAIM: Final = (
    PRELUDE
    + r"""
local now, limit, max_lost, ttl = now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local requeued, dead, cancelled = {}, {}, {}
local ids = redis.call('ZRANGEBYSCORE', P .. 'l', '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local t = dec(redis.call('HGET', D, id))
  if not t or t[ST] ~= 'r' then
    redis.call('ZREM', P .. 'l', id)
  else
    local lost = num(t, WL, 0) + 1
    t[WL] = lost
    if t[CR] == '1' then
      finish(id, t, 'C', now, ttl)
      cancelled[#cancelled + 1] = id
    elseif lost >= max_lost then
      t.s[DR] = 'worker lost ' .. lost .. ' times'
      finish(id, t, 'D', now, 0)
      dead[#dead + 1] = id
    else
      redis.call('ZREM', P .. 'l', id)
      t[ST] = 'q'
      t.s[TK] = ''
      save(id, t)
      push_ready(id, t, true)
      count('r', 'q')
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then signal() end
local expired = 0
if ttl > 0 then
  local old = redis.call('ZRANGEBYSCORE', P .. 'f', '-inf', now - ttl, 'LIMIT', 0, limit)
  for _, id in ipairs(old) do
    local t = dec(redis.call('HGET', D, id))
    if t then count(t[ST], nil) end
    redis.call('HDEL', D, id)
    redis.call('ZREM', P .. 'f', id)
    expired = expired + 1
  end
end
promote(now, limit)
local more = 0
if #ids >= limit or expired >= limit then more = 1 end
return {requeued, dead, cancelled, expired, more}
"""
)

# KEYS[1]; ARGV: id. Returns {record, name} or false.
GET: Final = (
    PRELUDE
    + r"""
local raw = redis.call('HGET', D, ARGV[1])
if not raw then return false end
local t = dec(raw)
local name = false
if t then name = redis.call('HGET', P .. 'i', t[NM]) end
return {raw, name or ''}
"""
)

# KEYS[1]; ARGV: index (q | s | l | f | x), status codes to keep, offset, limit, scan budget.
# Returns {id, record, name, ...} in index order.
LIST: Final = (
    PRELUDE
    + r"""
local index, want = ARGV[1], ARGV[2]
local offset, limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out, names, skipped = {}, {}, 0
local function take(id)
  if #out >= limit * 3 then return false end
  local raw = redis.call('HGET', D, id)
  local t = dec(raw)
  local st = '?'
  if t then st = t[ST] end
  if raw and string.find(want, st, 1, true) then
    if skipped < offset then
      skipped = skipped + 1
    else
      local name = ''
      if t then
        name = names[t[NM]] or redis.call('HGET', P .. 'i', t[NM]) or ''
        names[t[NM]] = name
      end
      out[#out + 1] = id
      out[#out + 1] = raw
      out[#out + 1] = name
    end
  end
  return true
end
if index == 'q' then
  local seen = {}
  for _, pr in ipairs(redis.call('ZRANGE', P .. 'p', 0, -1)) do
    local start = 0
    while budget > 0 do
      local ids = redis.call('LRANGE', P .. 'r:' .. pr, start, start + 99)
      if #ids == 0 then break end
      for _, id in ipairs(ids) do
        budget = budget - 1
        if not seen[id] then
          seen[id] = true
          if not take(id) then return out end
        end
      end
      start = start + 100
    end
  end
else
  local start = 0
  while budget > 0 do
    local ids = redis.call('ZRANGE', P .. index, start, start + 99)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      budget = budget - 1
      if not take(id) then return out end
    end
    start = start + 100
  end
end
return out
"""
)

# KEYS[1]; ARGV: id. Returns 1 (requeued), 0 (not dead), -1 (unique key held by a live task).
REQUEUE_DEAD: Final = (
    PRELUDE
    + r"""
local id = ARGV[1]
local t = dec(redis.call('HGET', D, id))
if not t or t[ST] ~= 'D' then return 0 end
local key = unique_key(t)
if key then
  local held = redis.call('GET', key)
  if held and held ~= id and redis.call('HEXISTS', D, held) == 1 then return -1 end
  redis.call('SET', key, id)
end
if tonumber(t[PR]) == nil or tonumber(t[EN]) == nil then return 0 end
local now = now_ms()
redis.call('ZREM', P .. 'x', id)
t[ST] = 'q'
t[WL], t[CR], t[FA], t[EA], t[RA] = '', '', '', '', now
t.s[DR], t.s[TK] = '', ''
save(id, t)
push_ready(id, t, false)
count('D', 'q')
signal()
return 1
"""
)

# KEYS[1]; ARGV: limit, then ids (none = the oldest dead letters up to limit).
PURGE_DEAD: Final = (
    PRELUDE
    + r"""
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', P .. 'x', 0, tonumber(ARGV[1]) - 1)
end
local purged = 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', P .. 'x', id) then
    local t = dec(redis.call('HGET', D, id))
    if not t or t[ST] == 'D' then
      redis.call('HDEL', D, id)
      redis.call('ZREM', P .. 'x', id)
      count('D', nil)
      purged = purged + 1
    end
  end
end
return purged
"""
)

# KEYS[1]; ARGV: older than ms, limit. Deletes terminal records (not dead letters).
PURGE_RESULTS: Final = (
    PRELUDE
    + r"""
local cutoff = now_ms() - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', P .. 'f', '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local t = dec(redis.call('HGET', D, id))
  if t then count(t[ST], nil) end
  redis.call('HDEL', D, id)
  redis.call('ZREM', P .. 'f', id)
end
return #ids
"""
)

# KEYS[1]. Returns {now ms, counts (flat), scheduled, running, dead, finished, expired leases,
# next scheduled ms or '', oldest ready enqueue ms or '', records}.
STATS: Final = (
    PRELUDE
    + r"""
local now = now_ms()
local first = redis.call('ZRANGE', P .. 's', 0, 0, 'WITHSCORES')
local next_due = ''
if #first > 0 then next_due = first[2] end
local oldest = ''
local top = redis.call('ZRANGE', P .. 'p', 0, 0)
if #top > 0 then
  local head = redis.call('LINDEX', P .. 'r:' .. top[1], 0)
  local t = head and dec(redis.call('HGET', D, head))
  if t then
    oldest = t[RA]
    if oldest == '' then oldest = t[EN] end
  end
end
return {
  now, redis.call('HGETALL', P .. 'k'), redis.call('ZCARD', P .. 's'),
  redis.call('ZCARD', P .. 'l'), redis.call('ZCARD', P .. 'x'), redis.call('ZCARD', P .. 'f'),
  redis.call('ZCOUNT', P .. 'l', '-inf', now), next_due, tostring(oldest), redis.call('HLEN', D)
}
"""
)
