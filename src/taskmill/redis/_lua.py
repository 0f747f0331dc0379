"""The Lua prelude every script starts with: the record codec and shared transitions.

``KEYS[1]`` is the queue's record hash; the other keys of the queue are derived from it
(same hash tag, same cluster slot). ``dec``/``enc`` read and write the record format
described in :mod:`._scripts`; ``finish`` is the one terminal transition (indexes,
unique key, counters, completion ``PUBLISH``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["PRELUDE"]

# Scalar header fields, 1-based (mirrored by taskmill.redis._record):
#  1 st status code   2 pr priority   3 en enqueued ms   4 nm name id   5 ra run_at ms
#  6 at attempt       7 dl deliveries 8 wl worker lost   9 cr cancel requested
# 10 sa started ms   11 fa finished ms 12 ea expires ms  13 us unique scope  14 ut unique ttl ms
# Strings after the payload: 1 unique key, 2 token, 3 worker, 4 result, 5 error type,
# 6 error message, 7 error traceback, 8 dead reason.
PRELUDE: Final = r"""
local D = KEYS[1]
local P = string.sub(D, 1, -2)
local NF, NS = 14, 8
local ST, PR, EN, NM, RA, AT, DL, WL, CR, SA, FA, EA, US, UT = 1,2,3,4,5,6,7,8,9,10,11,12,13,14
local UK, TK, WK, RS, ET, EM, EB, DR = 1,2,3,4,5,6,7,8
local LIVE = {q=true, s=true, r=true, y=true}
local DONE = {S=true, F=true, C=true, T=true}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function dec(raw)
  if type(raw) ~= 'string' then return nil end
  local semi = string.find(raw, ';', 1, true)
  if not semi or semi > 512 then return nil end
  local h, n = {}, 0
  for tok in string.gmatch(string.sub(raw, 1, semi - 1) .. ',', '([^,]*),') do
    n = n + 1
    h[n] = tok
  end
  if n > NF + NS then return nil end
  local t = {s = {}}
  for j = 1, NF do t[j] = h[j] or '' end
  local lens, total = {}, 0
  for j = 1, NS do
    local v = h[NF + j] or ''
    local len = 0
    if v ~= '' then
      len = tonumber(v)
      if not len or len < 0 or len ~= math.floor(len) then return nil end
    end
    lens[j] = len
    total = total + len
  end
  local plen = #raw - semi - total
  if plen < 0 then return nil end
  local pos = semi + 1
  t.p = string.sub(raw, pos, pos + plen - 1)
  pos = pos + plen
  for j = 1, NS do
    t.s[j] = string.sub(raw, pos, pos + lens[j] - 1)
    pos = pos + lens[j]
  end
  return t
end

local function enc(t)
  local h = {}
  for j = 1, NF do h[j] = t[j] or '' end
  local body = {t.p}
  for j = 1, NS do
    local v = t.s[j] or ''
    if v == '' then h[NF + j] = '' else h[NF + j] = #v end
    body[j + 1] = v
  end
  local n = NF + NS
  while n > 0 and h[n] == '' do n = n - 1 end
  return table.concat(h, ',', 1, n) .. ';' .. table.concat(body)
end

local function num(t, j, default)
  local v = tonumber(t[j])
  if v == nil then return default end
  return v
end

local function count(old, new)
  if old and old ~= '' then redis.call('HINCRBY', P .. 'k', old, -1) end
  if new then redis.call('HINCRBY', P .. 'k', new, 1) end
end

local function signal()
  if redis.call('LLEN', P .. 'g') == 0 then redis.call('RPUSH', P .. 'g', '1') end
end

local function push_ready(id, t, front)
  local pr = t[PR]
  if tonumber(pr) == nil then pr = '0' end
  local key = P .. 'r:' .. pr
  if front then redis.call('LPUSH', key, id) else redis.call('RPUSH', key, id) end
  redis.call('ZADD', P .. 'p', tonumber(pr), pr)
end

local function unique_key(t)
  if t.s[UK] == '' then return nil end
  return P .. 'u:' .. t.s[UK]
end

local function drop_unique(id, t)
  local key = unique_key(t)
  if key and redis.call('GET', key) == id then redis.call('DEL', key) end
end

local function save(id, t)
  redis.call('HSET', D, id, enc(t))
end

-- The terminal transition: indexes, unique key, counters, notification.
local function finish(id, t, st, now, ttl)
  local old = t[ST]
  t[ST] = st
  t[FA] = now
  redis.call('ZREM', P .. 'l', id)
  redis.call('ZREM', P .. 's', id)
  if st == 'D' then
    redis.call('ZADD', P .. 'x', now, id)
  else
    redis.call('ZADD', P .. 'f', now, id)
    if ttl > 0 then t[EA] = now + ttl end
  end
  local key = unique_key(t)
  if key and t[US] == 'd' then
    if redis.call('GET', key) == id then redis.call('PEXPIRE', key, num(t, UT, 1)) end
  else
    drop_unique(id, t)
  end
  save(id, t)
  count(old, st)
  redis.call('PUBLISH', P .. 'w:' .. id, st)
end

local function owned(id, token)
  local t = dec(redis.call('HGET', D, id))
  if t and t[ST] == 'r' and t.s[TK] == token and token ~= '' then return t end
  return nil
end

local function intern(name)
  local id = redis.call('HGET', P .. 'n', name)
  if id then return id end
  id = tostring(redis.call('HINCRBY', P .. 'i', '#', 1))
  redis.call('HSET', P .. 'n', name, id)
  redis.call('HSET', P .. 'i', id, name)
  return id
end

local function promote(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', P .. 's', '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', P .. 's', id)
    local raw = redis.call('HGET', D, id)
    if raw then
      local t = dec(raw)
      if t == nil then
        redis.call('RPUSH', P .. 'r:0', id)
        redis.call('ZADD', P .. 'p', 0, '0')
      elseif t[ST] == 's' or t[ST] == 'y' then
        count(t[ST], 'q')
        t[ST] = 'q'
        save(id, t)
        push_ready(id, t, false)
      end
    end
  end
  if #ids > 0 then signal() end
  return #ids
end

-- Dead-letter a record that cannot be delivered, keeping its raw bytes for inspection.
local function bury(id, raw, t, why, now)
  if t == nil then
    t = {s = {'', '', '', '', '', '', '', ''}, p = raw}
    for j = 1, NF do t[j] = '' end
    t[PR] = '0'
    t[EN] = now
    t[ST] = ''
  end
  t.s[DR] = why
  redis.call('HINCRBY', P .. 'k', 'malformed', 1)
  finish(id, t, 'D', now, 0)
end

local function problem(t, names)
  if tonumber(t[PR]) == nil then return 'priority is not a number' end
  if tonumber(t[EN]) == nil then return 'enqueued time is not a number' end
  if t[RA] ~= '' and tonumber(t[RA]) == nil then return 'run_at is not a number' end
  if num(t, AT, 1) < 1 or num(t, DL, 0) < 0 or num(t, WL, 0) < 0 then
    return 'attempt counters are invalid'
  end
  local name = names[t[NM]]
  if name == nil then
    name = redis.call('HGET', P .. 'i', t[NM])
    if not name or t[NM] == '#' then return 'unknown task name id ' .. t[NM] end
    names[t[NM]] = name
  end
  return nil
end
"""
