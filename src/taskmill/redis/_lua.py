"""The Lua prelude every script starts with: the record codec, a write-back cache, transitions.

``KEYS[1]`` is the queue's record hash; the other keys of the queue are derived from it
(same hash tag, same cluster slot).

A record is one MessagePack array (Redis' built-in ``cmsgpack``), trailing nils
omitted; ``dec``/``enc`` cost about a microsecond each, a tenth of a hand-written text
codec in Lua. Scripts read records through ``load`` and write them with ``save``:
records, sorted-set and list changes and status counters are collected during the
script and written by ``flush`` in a few bulk calls (one ``HSET`` for many records,
one ``ZADD`` per index, ...), which is what lets one claim or ack script serve
hundreds of tasks cheaply. A script body runs inside ``main``; the wrapper flushes
after it returns, so no early ``return`` can lose a write. ``finish`` is the one
terminal transition (indexes, unique key, counters, completion ``PUBLISH``).
"""

from __future__ import annotations

import re
from typing import Final

from taskmill._backend import HISTORY_LIMIT, HISTORY_TRACEBACK

__all__ = ["PRELUDE", "script"]

# Record fields, 1-based (mirrored by taskmill.redis._record), absent = nil:
#  1 pl payload      2 st status code   3 pr priority     4 en enqueued ms   5 nm name id
#  6 ra run_at ms    7 at attempt (1)   8 dl deliveries   9 sa started ms   10 tk token
# 11 wk worker      12 fa finished ms  13 ea expires ms  14 rs result      15 et error type
# 16 em error text  17 eb traceback    18 wl worker lost 19 cr cancel req. 20 dr dead reason
# 21 uk unique key  22 us unique scope 23 ut unique ttl ms 24 eh error history
#    (an array of {attempt, type, message, traceback end}, the latest HISTORY_LIMIT)
PRELUDE: Final = r"""
local D = KEYS[1]
local P = string.sub(D, 1, -2)
local NF = 24
local PL, ST, PR, EN, NM, RA, AT, DL, SA, TK, WK, FA = 1,2,3,4,5,6,7,8,9,10,11,12
local EA, RS, ET, EM, EB, WL, CR, DR, UK, US, UT, EH = 13,14,15,16,17,18,19,20,21,22,23,24
local LIVE = {q=true, s=true, r=true, y=true}
local DONE = {S=true, F=true, C=true, T=true}
local CHUNK = 500
local HISTORY_LIMIT, HISTORY_TRACEBACK = @HISTORY@

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- codec ------------------------------------------------------------------------------
local function dec(raw)
  if type(raw) ~= 'string' or #raw == 0 then return nil end
  local b = string.byte(raw, 1)
  if not ((b >= 0x92 and b <= 0x9f) or b == 0xdc) then return nil end
  local ok, t, extra = pcall(cmsgpack.unpack, raw)
  if not ok or type(t) ~= 'table' or extra ~= nil then return nil end
  if type(t[PL]) ~= 'string' or type(t[ST]) ~= 'string' then return nil end
  return t
end

local function enc(t)
  local n = NF
  while n > 2 and t[n] == nil do n = n - 1 end
  if n < 16 then return string.char(0x90 + n) .. cmsgpack.pack(unpack(t, 1, n)) end
  return string.char(0xdc, 0, n) .. cmsgpack.pack(unpack(t, 1, n))
end

local function num(t, j, default)
  local v = t[j]
  if type(v) ~= 'number' then return default end
  return v
end

-- write-back cache ---------------------------------------------------------------------
local CACHE, DIRTY = {}, {}
local ZOPS, ZKEYS = {}, {}
local PUSHES, PKEYS = {}, {}
local COUNTS = {}

-- Read many records at once into the cache; returns nothing.
local function prefetch(ids)
  local want = {}
  for _, id in ipairs(ids) do
    if CACHE[id] == nil then want[#want + 1] = id end
  end
  for i = 1, #want, CHUNK do
    local last = math.min(i + CHUNK - 1, #want)
    local raws = redis.call('HMGET', D, unpack(want, i, last))
    for j = i, last do
      local raw = raws[j - i + 1]
      if raw then CACHE[want[j]] = {raw = raw} else CACHE[want[j]] = false end
    end
  end
end

local function fill(id)
  local c = CACHE[id]
  if c == nil then
    local raw = redis.call('HGET', D, id)
    if raw then c = {raw = raw} else c = false end
    CACHE[id] = c
  end
  return c
end

-- Whether a record exists (written in this script or stored).
local function exists(id)
  return fill(id) ~= false
end

-- The record of ``id`` as a table (nil when missing or undecodable) and its raw bytes.
local function load(id)
  local c = fill(id)
  if not c then return nil, nil end
  if c.t == nil then c.t = dec(c.raw) or false end
  return c.t or nil, c.raw
end

local function mark(id)
  if not DIRTY[id] then
    DIRTY[id] = true
    DIRTY[#DIRTY + 1] = id
  end
end

-- Write ``t`` at the next flush.
local function save(id, t)
  local c = CACHE[id]
  if not c then
    c = {}
    CACHE[id] = c
  end
  c.t = t
  c.raw = nil
  mark(id)
end

-- Write ``t`` at the next flush and return its encoding now (for a reply).
local function store(id, t)
  local raw = enc(t)
  CACHE[id] = {t = t, raw = raw}
  mark(id)
  return raw
end

local function forget(id)
  CACHE[id] = false
  if DIRTY[id] then DIRTY[id] = false end
end

-- Record a sorted-set change for ``flush``: score (add) or false (remove); last wins.
local function zset(name, id, score)
  local key = P .. name
  local ops = ZOPS[key]
  if not ops then
    ops = {}
    ZOPS[key] = ops
    ZKEYS[#ZKEYS + 1] = key
  end
  ops[id] = score
end

local function push(key, id, front)
  local p = PUSHES[key]
  if not p then
    p = {front = {}, back = {}}
    PUSHES[key] = p
    PKEYS[#PKEYS + 1] = key
  end
  if front then p.front[#p.front + 1] = id else p.back[#p.back + 1] = id end
end

local function count(old, new)
  if old and old ~= '' then COUNTS[old] = (COUNTS[old] or 0) - 1 end
  if new then COUNTS[new] = (COUNTS[new] or 0) + 1 end
end

local function bulk(cmd, key, args)
  for i = 1, #args, CHUNK * 2 do
    redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK * 2 - 1, #args)))
  end
end

local function flush()
  local written = {}
  for _, id in ipairs(DIRTY) do
    if DIRTY[id] then
      local c = CACHE[id]
      if c.raw == nil then c.raw = enc(c.t) end
      written[#written + 1] = id
      written[#written + 1] = c.raw
      DIRTY[id] = nil
    elseif DIRTY[id] == false then
      DIRTY[id] = nil
    end
  end
  DIRTY = {}
  if #written > 0 then bulk('HSET', D, written) end
  for _, key in ipairs(ZKEYS) do
    local adds, rems = {}, {}
    for id, score in pairs(ZOPS[key]) do
      if score then
        adds[#adds + 1] = score
        adds[#adds + 1] = id
      else
        rems[#rems + 1] = id
      end
    end
    if #rems > 0 then bulk('ZREM', key, rems) end
    if #adds > 0 then bulk('ZADD', key, adds) end
  end
  ZOPS, ZKEYS = {}, {}
  for _, key in ipairs(PKEYS) do
    local p = PUSHES[key]
    if #p.front > 0 then bulk('LPUSH', key, p.front) end
    if #p.back > 0 then bulk('RPUSH', key, p.back) end
  end
  PUSHES, PKEYS = {}, {}
  for code, delta in pairs(COUNTS) do
    if delta ~= 0 then redis.call('HINCRBY', P .. 'k', code, delta) end
  end
  COUNTS = {}
end

-- transitions ----------------------------------------------------------------------------
local SIGNALLED = false
local function signal()
  if SIGNALLED then return end
  SIGNALLED = true
  if redis.call('LLEN', P .. 'g') == 0 then redis.call('RPUSH', P .. 'g', '1') end
end

-- Whether the queue has a cluster-wide bound on running tasks (read once per script).
local CAPPED = nil
local function capped()
  if CAPPED == nil then CAPPED = redis.call('HEXISTS', P .. 'o', 'mr') == 1 end
  return CAPPED
end

-- A running task left the running set: under a running bound, wake a waiting worker.
local function freed()
  if capped() and redis.call('ZCARD', P .. 'p') > 0 then signal() end
end

local READY = {}
local function push_ready(id, t, front)
  local pr = t[PR]
  if type(pr) ~= 'number' then pr = 0 end
  push(P .. 'r:' .. pr, id, front)
  if not READY[pr] then
    READY[pr] = true
    redis.call('ZADD', P .. 'p', pr, pr)
  end
end

local function unique_key(t)
  if type(t[UK]) ~= 'string' then return nil end
  return P .. 'u:' .. t[UK]
end

local function drop_unique(id, t)
  local key = unique_key(t)
  if key and redis.call('GET', key) == id then redis.call('DEL', key) end
end

-- The terminal transition: indexes, unique key, counters, notification.
local function finish(id, t, st, now, ttl)
  local old = t[ST]
  t[ST] = st
  t[FA] = now
  if old == 'r' then freed() end
  zset('l', id, false)
  zset('s', id, false)
  if st == 'D' then
    zset('x', id, now)
  else
    zset('f', id, now)
    if ttl > 0 then t[EA] = now + ttl end
  end
  local key = unique_key(t)
  if key and t[US] == 'd' then
    if redis.call('GET', key) == id then redis.call('PEXPIRE', key, num(t, UT, 1)) end
  elseif key then
    drop_unique(id, t)
  end
  save(id, t)
  count(old, st)
  redis.call('PUBLISH', P .. 'w:' .. id, st)
end

local function owned(id, token)
  local t = load(id)
  if t and t[ST] == 'r' and t[TK] == token and token ~= '' then return t end
  return nil
end

local INTERNED = {}
local function intern(name)
  local id = INTERNED[name]
  if id then return id end
  id = redis.call('HGET', P .. 'n', name)
  if id then
    id = tonumber(id)
  else
    id = redis.call('HINCRBY', P .. 'i', '#', 1)
    redis.call('HSET', P .. 'n', name, id)
    redis.call('HSET', P .. 'i', id, name)
  end
  INTERNED[name] = id
  return id
end

local function promote(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', P .. 's', '-inf', now, 'LIMIT', 0, limit)
  if #ids == 0 then return 0 end
  prefetch(ids)
  for _, id in ipairs(ids) do
    zset('s', id, false)
    local t, raw = load(id)
    if raw and t == nil then
      push(P .. 'r:0', id, false)
      redis.call('ZADD', P .. 'p', 0, 0)
    elseif t and (t[ST] == 's' or t[ST] == 'y') then
      count(t[ST], 'q')
      t[ST] = 'q'
      save(id, t)
      push_ready(id, t, false)
    end
  end
  signal()
  return #ids
end

-- Record a failed attempt: the error in its fields and at the end of the history.
local function failed(t, kind, message, traceback)
  t[ET], t[EM], t[EB] = kind, message, traceback
  local h = t[EH]
  if type(h) ~= 'table' then h = {} end
  h[#h + 1] = {num(t, AT, 1), kind, message, string.sub(traceback, -HISTORY_TRACEBACK)}
  while #h > HISTORY_LIMIT do table.remove(h, 1) end
  t[EH] = h
end

-- Dead-letter a record that cannot be delivered, keeping its raw bytes for inspection.
local function bury(id, raw, t, why, now)
  if t == nil then
    t = {raw or '', ''}
    t[PR] = 0
    t[EN] = now
  end
  t[DR] = why
  redis.call('HINCRBY', P .. 'k', 'malformed', 1)
  finish(id, t, 'D', now, 0)
end

-- The task name of a name id, or nil.
local NAMES = {}
local function name_of(nm)
  if type(nm) ~= 'number' then return nil end
  local name = NAMES[nm]
  if name == nil then
    name = redis.call('HGET', P .. 'i', nm) or false
    NAMES[nm] = name
  end
  return name or nil
end

local function problem(t)
  if type(t[PR]) ~= 'number' then return 'priority is not a number' end
  if type(t[EN]) ~= 'number' then return 'enqueued time is not a number' end
  if t[RA] ~= nil and type(t[RA]) ~= 'number' then return 'run_at is not a number' end
  if num(t, AT, 1) < 1 or num(t, DL, 0) < 0 or num(t, WL, 0) < 0 then
    return 'attempt counters are invalid'
  end
  if name_of(t[NM]) == nil then return 'unknown task name id ' .. tostring(t[NM]) end
  return nil
end
""".replace("@HISTORY@", f"{HISTORY_LIMIT}, {HISTORY_TRACEBACK}")


_DEFINES: Final = re.compile(r"^local (?:function (\w+)|([\w, ]+?) =)", re.MULTILINE)
_WORD: Final = re.compile(r"\b\w+\b")


def _chunks() -> list[tuple[frozenset[str], str]]:
    """Split the prelude at blank lines: each chunk with the names it defines."""
    out = []
    for chunk in PRELUDE.strip("\n").split("\n\n"):
        names = set()
        for function, variables in _DEFINES.findall(chunk):
            names.update([function] if function else [v.strip() for v in variables.split(",")])
        out.append((frozenset(names), chunk))
    return out


def script(body: str) -> str:
    """Return a whole script: the prelude parts it uses, ``body`` as ``main``, a flush.

    Only the prelude chunks that the body (or a chunk it uses) refers to are kept:
    a script pays for creating its own helper closures on every call.
    """
    chunks = _chunks()
    end = "\nend\nlocal result = main()\nflush()\nreturn result\n"
    wanted = set(_WORD.findall(body)) | {"flush"}
    keep = [False] * len(chunks)
    changed = True
    while changed:
        changed = False
        for i, (names, chunk) in enumerate(chunks):
            if not keep[i] and (not names or names & wanted):
                keep[i] = changed = True
                wanted |= set(_WORD.findall(chunk))
    prelude = "\n\n".join(chunk for (_, chunk), kept in zip(chunks, keep, strict=True) if kept)
    return f"{prelude}\n\nlocal function main()\n{body}{end}"
