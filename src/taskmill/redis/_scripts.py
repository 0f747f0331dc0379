"""The Lua scripts: every state change of a task is one atomic script on Redis' clock.

Each script gets ``KEYS[1] = "<prefix>:{<queue>}:d"`` (the queue's record hash) and
derives the queue's other keys from it, so every key a script touches shares the
queue's hash tag and lives in one Redis Cluster slot. Time is always Redis ``TIME``
(milliseconds), never a worker's clock.

A record is one hash field (the task id) holding a MessagePack array of 24 fields
(listed in :mod:`._lua`), trailing nils omitted. A queued task with a 100-byte payload
is about 117 bytes, which keeps its memory under 200 bytes (docs/redis.md, "Memory").
Each body runs through :func:`._lua.script`, which batches its writes.
"""

from __future__ import annotations

from typing import Final

from ._lua import script

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

# KEYS[1]; ARGV: unique scope, unique ttl ms, then a MessagePack array of tasks, each
# [id, name, priority, run_at ms or nil, unique key or nil, payload]. Returns id, created
# per task.
ENQUEUE: Final = script(r"""
local now = now_ms()
local us, ut = ARGV[1], tonumber(ARGV[2])
local tasks = cmsgpack.unpack(ARGV[3])
local ids = {}
for k, task in ipairs(tasks) do ids[k] = task[1] end
prefetch(ids)
local bound = tonumber(redis.call('HGET', P .. 'o', 'mq'))
if bound then
  -- Back pressure: count the tasks this batch would add to the ready set, before any write.
  local ready = tonumber(redis.call('HGET', P .. 'k', 'q')) or 0
  local adding, ids_seen, keys_seen = 0, {}, {}
  for _, task in ipairs(tasks) do
    local id, due, uk = task[1], task[4], task[5]
    local new = not ids_seen[id] and not exists(id)
    if new and uk then
      local held = keys_seen[uk] or redis.call('GET', P .. 'u:' .. uk)
      new = not (held and (keys_seen[uk] or exists(held)))
      keys_seen[uk] = id
    end
    ids_seen[id] = true
    if new and not (due and due > now) then adding = adding + 1 end
  end
  if adding > 0 and ready + adding > bound then return {-1, ready, bound} end
end
local out, woke = {}, false
for _, task in ipairs(tasks) do
  local id, name, pr, due, uk, payload = task[1], task[2], task[3], task[4], task[5], task[6]
  local existing = nil
  local ukey = nil
  if uk then
    ukey = P .. 'u:' .. uk
    local held = redis.call('GET', ukey)
    if held and exists(held) then existing = held end
  end
  if not existing and exists(id) then existing = id end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local t = {payload, 'q', pr, now, intern(name)}
    if due and due > now then
      t[ST] = 's'
      t[RA] = due
      zset('s', id, due)
    else
      if due then t[RA] = due end
      push_ready(id, t, false)
      woke = true
    end
    if ukey then
      t[UK] = uk
      if us ~= 'r' then t[US] = us end
      if us == 'd' then
        t[UT] = ut
        redis.call('SET', ukey, id)
      elseif ut > 0 then
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
""")

# KEYS[1]; ARGV: limit, lease ms, worker, promote limit, token nonce.
# Returns {lease until ms, now ms, next scheduled ms or '', id, token, name, record, ...}.
CLAIM: Final = script(r"""
local now = now_ms()
local limit, lease, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
promote(now, tonumber(ARGV[4]))
flush()
local out = {now + lease, now, ''}
-- Cluster-wide limits (configure_queue): running bound and token-bucket rate.
local cfg = redis.call('HMGET', P .. 'o', 'mr', 'rr', 'rb')
local max_running, rate, burst = tonumber(cfg[1]), tonumber(cfg[2]), tonumber(cfg[3])
local wait_until = nil
if max_running then limit = math.min(limit, max_running - redis.call('ZCARD', P .. 'l')) end
local tokens = nil
if rate then
  burst = burst or math.max(1, rate)
  local b = redis.call('HMGET', P .. 'b', 't', 'ts')
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, (tonumber(b[1]) or burst) + math.max(0, now - ts) * rate / 1000)
  if tokens < 1 then wait_until = now + math.ceil((1 - tokens) * 1000 / rate) end
  limit = math.min(limit, math.floor(tokens))
end
local got, budget = 0, limit + 1000
while got < limit and budget > 0 do
  local top = redis.call('ZRANGE', P .. 'p', 0, 0)
  if #top == 0 then break end
  local key = P .. 'r:' .. top[1]
  local ids = redis.call('LPOP', key, math.min(limit - got, budget))
  if not ids or redis.call('LLEN', key) == 0 then
    redis.call('ZREM', P .. 'p', top[1])
    READY[tonumber(top[1])] = nil
  end
  if ids then
    budget = budget - #ids
    prefetch(ids)
    local base = redis.call('INCRBY', P .. 'c', #ids) - #ids
    for k, id in ipairs(ids) do
      local t, raw = load(id)
      local why, ready = nil, false
      if raw and t == nil then
        why = 'undecodable record'
      elseif t and not (LIVE[t[ST]] or DONE[t[ST]] or t[ST] == 'D') then
        why = 'unknown status ' .. t[ST]
      elseif t and t[ST] == 'q' then
        why = problem(t)
        ready = why == nil
      end
      if why then
        bury(id, raw, t, 'malformed record: ' .. why, now)
      elseif ready then
        local token = (base + k) .. '.' .. ARGV[5]
        t[ST] = 'r'
        t[DL] = num(t, DL, 0) + 1
        t[SA] = now
        t[TK] = token
        t[WK] = worker
        if t[US] == 'q' then drop_unique(id, t) end
        zset('l', id, now + lease)
        count('q', 'r')
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = name_of(t[NM])
        out[#out + 1] = store(id, t)
        got = got + 1
      end
    end
  end
end
if tokens then
  tokens = tokens - got
  redis.call('HSET', P .. 'b', 't', tokens, 'ts', now)
  if got > 0 and tokens < 1 then wait_until = now + math.ceil((1 - tokens) * 1000 / rate) end
end
local exhausted = (tokens and tokens < 1)
  or (max_running and redis.call('ZCARD', P .. 'l') + got >= max_running)
if not exhausted and redis.call('ZCARD', P .. 'p') > 0 then signal() end
local first = redis.call('ZRANGE', P .. 's', 0, 0, 'WITHSCORES')
if #first > 0 then out[3] = first[2] end
if wait_until and (out[3] == '' or wait_until < tonumber(out[3])) then out[3] = wait_until end
return out
""")

# KEYS[1]; ARGV: id, token, lease ms. Returns {0} (lost) or {1|2 (cancel requested), until ms}.
RENEW: Final = script(r"""
local t = owned(ARGV[1], ARGV[2])
if not t then return {0} end
local until_ms = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', P .. 'l', until_ms, ARGV[1])
if t[CR] == 1 then return {2, until_ms} end
return {1, until_ms}
""")

# KEYS[1]; ARGV: results ttl ms, a MessagePack array of [id, token, result or nil].
ACK: Final = script(r"""
local now, ttl = now_ms(), tonumber(ARGV[1])
local acks = cmsgpack.unpack(ARGV[2])
local ids = {}
for k, ack in ipairs(acks) do ids[k] = ack[1] end
prefetch(ids)
local out = {}
for _, ack in ipairs(acks) do
  local id, token = ack[1], ack[2]
  local t = owned(id, token)
  if t then
    if ack[3] then t[RS] = ack[3] end
    t[ET], t[EM], t[EB] = nil, nil, nil
    finish(id, t, 'S', now, ttl)
    out[#out + 1] = 1
  else
    local done = load(id)
    if done and done[ST] == 'S' and done[TK] == token and token ~= '' then
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
""")

# KEYS[1]; ARGV: results ttl ms, id, token, retry at ms ('' = final), final status code,
# error type, error message, error traceback. Returns 1 or 0.
NACK: Final = script(r"""
local now, ttl, id, token = now_ms(), tonumber(ARGV[1]), ARGV[2], ARGV[3]
local t = owned(id, token)
if not t then
  local seen = load(id)
  if seen and seen[TK] == token and token ~= '' and seen[ST] ~= 'r' and seen[ST] ~= 'S'
     and seen[ST] ~= 'D' and seen[ET] ~= nil and seen[ET] ~= '' then
    return 1
  end
  return 0
end
failed(t, ARGV[6], ARGV[7], ARGV[8])
if t[CR] == 1 then
  finish(id, t, 'C', now, ttl)
elseif ARGV[4] == '' then
  finish(id, t, ARGV[5], now, ttl)
else
  local due = tonumber(ARGV[4])
  zset('l', id, false)
  freed()
  t[AT] = num(t, AT, 1) + 1
  t[RA] = due
  if due > now then
    t[ST] = 'y'
    zset('s', id, due)
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
""")

# KEYS[1]; ARGV: results ttl ms, id, token. Back to the front of its queue, no penalty.
RELEASE: Final = script(r"""
local now, ttl, id = now_ms(), tonumber(ARGV[1]), ARGV[2]
local t = owned(id, ARGV[3])
if not t then return 0 end
if t[CR] == 1 then
  finish(id, t, 'C', now, ttl)
  return 1
end
zset('l', id, false)
freed()
t[ST] = 'q'
t[TK] = nil
t[RA] = now
save(id, t)
push_ready(id, t, true)
count('r', 'q')
signal()
return 1
""")

# KEYS[1]; ARGV: results ttl ms, id, token. The owner honoured a cancel request.
FINISH_CANCELLED: Final = script(r"""
local t = owned(ARGV[2], ARGV[3])
if not t then return 0 end
finish(ARGV[2], t, 'C', now_ms(), tonumber(ARGV[1]))
return 1
""")

# KEYS[1]; ARGV: (unused ttl), id, token, reason.
DEAD_LETTER: Final = script(r"""
local t = owned(ARGV[2], ARGV[3])
if not t then
  local seen = load(ARGV[2])
  if seen and seen[ST] == 'D' and seen[TK] == ARGV[3] and ARGV[3] ~= '' then return 1 end
  return 0
end
t[DR] = ARGV[4]
finish(ARGV[2], t, 'D', now_ms(), 0)
return 1
""")

# KEYS[1]; ARGV: results ttl ms, id. Returns cancelled | requested | finished | missing.
CANCEL: Final = script(r"""
local id = ARGV[2]
local t = load(id)
if not t then return 'missing' end
if t[ST] == 'r' then
  t[CR] = 1
  save(id, t)
  return 'requested'
end
if LIVE[t[ST]] then
  finish(id, t, 'C', now_ms(), tonumber(ARGV[1]))
  return 'cancelled'
end
return 'finished'
""")

# KEYS[1]; ARGV: limit, max worker lost, results ttl ms (0 = keep).
# Returns {requeued ids, dead ids, cancelled ids, expired count, more (0/1)}.
RECLAIM: Final = script(r"""
local now, limit, max_lost, ttl = now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local requeued, dead, cancelled = {}, {}, {}
local ids = redis.call('ZRANGEBYSCORE', P .. 'l', '-inf', now, 'LIMIT', 0, limit)
prefetch(ids)
for _, id in ipairs(ids) do
  local t = load(id)
  if not t or t[ST] ~= 'r' then
    zset('l', id, false)
  else
    local lost = num(t, WL, 0) + 1
    t[WL] = lost
    if t[CR] == 1 then
      finish(id, t, 'C', now, ttl)
      cancelled[#cancelled + 1] = id
    elseif lost >= max_lost then
      t[DR] = 'worker lost ' .. lost .. ' times'
      finish(id, t, 'D', now, 0)
      dead[#dead + 1] = id
    else
      zset('l', id, false)
      t[ST] = 'q'
      t[TK] = nil
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
  prefetch(old)
  for _, id in ipairs(old) do
    local t = load(id)
    if t then count(t[ST], nil) end
    forget(id)
    zset('f', id, false)
    expired = expired + 1
  end
  if #old > 0 then bulk('HDEL', D, old) end
end
promote(now, limit)
local more = 0
if #ids >= limit or expired >= limit then more = 1 end
return {requeued, dead, cancelled, expired, more}
""")

# KEYS[1]; ARGV: id. Returns {record, name} or false.
GET: Final = script(r"""
local t, raw = load(ARGV[1])
if not raw then return false end
return {raw, (t and name_of(t[NM])) or ''}
""")

# KEYS[1]; ARGV: index (q | s | l | f | x), status codes to keep, offset, limit, scan budget.
# Returns {id, record, name, ...} in index order.
LIST: Final = script(r"""
local index, want = ARGV[1], ARGV[2]
local offset, limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out, skipped = {}, 0
local function take(id)
  if #out >= limit * 3 then return false end
  local t, raw = load(id)
  local st = '?'
  if t then st = t[ST] end
  if raw and st ~= '' and string.find(want, st, 1, true) then
    if skipped < offset then
      skipped = skipped + 1
    else
      out[#out + 1] = id
      out[#out + 1] = raw
      out[#out + 1] = (t and name_of(t[NM])) or ''
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
      prefetch(ids)
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
    prefetch(ids)
    for _, id in ipairs(ids) do
      budget = budget - 1
      if not take(id) then return out end
    end
    start = start + 100
  end
end
return out
""")

# KEYS[1]; ARGV: id. Returns 1 (requeued), 0 (not dead), -1 (unique key held by a live task).
REQUEUE_DEAD: Final = script(r"""
local id = ARGV[1]
local t = load(id)
if not t or t[ST] ~= 'D' then return 0 end
if type(t[PR]) ~= 'number' or type(t[EN]) ~= 'number' then return 0 end
local key = unique_key(t)
if key then
  local held = redis.call('GET', key)
  if held and held ~= id and exists(held) then return -1 end
  redis.call('SET', key, id)
end
local now = now_ms()
zset('x', id, false)
t[ST] = 'q'
t[WL], t[CR], t[FA], t[EA], t[RA] = nil, nil, nil, nil, now
t[DR], t[TK] = nil, nil
save(id, t)
push_ready(id, t, false)
count('D', 'q')
signal()
return 1
""")

# KEYS[1]; ARGV: limit, then ids (none = the oldest dead letters up to limit).
PURGE_DEAD: Final = script(r"""
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', P .. 'x', 0, tonumber(ARGV[1]) - 1)
end
local purged = {}
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', P .. 'x', id) then
    local t = load(id)
    if not t or t[ST] == 'D' then
      forget(id)
      zset('x', id, false)
      count('D', nil)
      purged[#purged + 1] = id
    end
  end
end
if #purged > 0 then bulk('HDEL', D, purged) end
return #purged
""")

# KEYS[1]; ARGV: older than ms, limit. Deletes terminal records (not dead letters).
PURGE_RESULTS: Final = script(r"""
local cutoff = now_ms() - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', P .. 'f', '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
prefetch(ids)
for _, id in ipairs(ids) do
  local t = load(id)
  if t then count(t[ST], nil) end
  forget(id)
  zset('f', id, false)
end
if #ids > 0 then bulk('HDEL', D, ids) end
return #ids
""")

# KEYS[1]. Returns {now ms, counts (flat), scheduled, running, dead, finished, expired leases,
# next scheduled ms or '', oldest ready enqueue ms or '', records}.
STATS: Final = script(r"""
local now = now_ms()
local first = redis.call('ZRANGE', P .. 's', 0, 0, 'WITHSCORES')
local next_due = ''
if #first > 0 then next_due = first[2] end
local oldest = ''
local top = redis.call('ZRANGE', P .. 'p', 0, 0)
if #top > 0 then
  local head = redis.call('LINDEX', P .. 'r:' .. top[1], 0)
  local t = head and load(head)
  if t then oldest = t[RA] or t[EN] or '' end
end
return {
  now, redis.call('HGETALL', P .. 'k'), redis.call('ZCARD', P .. 's'),
  redis.call('ZCARD', P .. 'l'), redis.call('ZCARD', P .. 'x'), redis.call('ZCARD', P .. 'f'),
  redis.call('ZCOUNT', P .. 'l', '-inf', now), next_due, tostring(oldest), redis.call('HLEN', D)
}
""")
