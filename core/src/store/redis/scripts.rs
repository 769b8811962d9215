//! The Lua scripts. Each runs atomically on one node, and every key it touches is passed in
//! `KEYS` and shares one hash tag (a job's `{<job>}`, or a single global key), so they run
//! unchanged on Redis Cluster. `redis::Script` sends `EVALSHA` and loads the script on
//! `NOSCRIPT` (after a server restart, say).
//!
//! Scripts that need the job to exist check its `state` key first and answer the error
//! `UNKNOWN_JOB`, which the Rust side maps to [`crate::StoreError::UnknownJob`].

use redis::Script;
use std::sync::LazyLock;

pub(super) struct Scripts {
    pub put_job: Script,
    pub set_state: Script,
    pub delete_job: Script,
    pub fan_in: Script,
    pub fan_in_flagged: Script,
    pub put_outputs: Script,
    pub append_events: Script,
    pub touch: Script,
    pub reclaim: Script,
    pub merge_profile: Script,
    pub release_outputs: Script,
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    put_job: Script::new(PUT_JOB),
    set_state: Script::new(SET_STATE),
    delete_job: Script::new(DELETE_JOB),
    fan_in: Script::new(FAN_IN),
    fan_in_flagged: Script::new(FAN_IN_FLAGGED),
    put_outputs: Script::new(PUT_OUTPUTS),
    append_events: Script::new(APPEND_EVENTS),
    touch: Script::new(TOUCH),
    reclaim: Script::new(RECLAIM),
    merge_profile: Script::new(MERGE_PROFILE),
    release_outputs: Script::new(RELEASE_OUTPUTS),
});

/// KEYS: plan, state. ARGV: ttl ms, plan, initial state. Stores the job unless it exists.
const PUT_JOB: &str = r"
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[1])
  return 1
end
return 0
";

/// KEYS: state, plan, events, evseq. ARGV: ttl ms, state, '1' when the state is final.
/// A final state adds a wake-up marker (field `w`) to the event stream, so that blocked
/// readers notice at once; its id `<last event>-*` sorts before the next event's.
const SET_STATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('UNKNOWN_JOB job is not in the store')
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if ARGV[3] == '1' then
  local n = tonumber(redis.call('GET', KEYS[4]) or '0')
  redis.pcall('XADD', KEYS[3], string.format('%d-*', n), 'w', '1')
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
end
return 1
";

/// KEYS: plan, state, events, objects. ARGV: ttl ms. Removes the job's existence keys (so
/// every later write script fails), wakes blocked event readers, and returns the job's
/// object keys for the caller to delete with the rest.
const DELETE_JOB: &str = r"
redis.call('UNLINK', KEYS[1], KEYS[2])
redis.call('XADD', KEYS[3], '*', 'w', '1')
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return redis.call('SMEMBERS', KEYS[4])
";

/// Lua helpers every batched script starts with. A script's cost is mostly its
/// `redis.call`s (each converts its arguments and reply), so a batch goes to Redis in a few
/// variadic commands (`BITFIELD`, `HMGET`, `HSET`) rather than one command per item; Lua
/// can pass at most a few thousand values to one call, hence the chunks.
/// - `chunked(cmd, key, args, width)`: `cmd key args…` in chunks of whole `width`-item
///   groups, the replies (arrays) joined;
/// - `write_once(key, kv)`: writes the (field, value) pairs of `kv` whose field is absent
///   (as `HSETNX` each, the first of duplicate fields winning).
macro_rules! helpers {
    () => {
        r"
local function chunked(cmd, key, args, width)
  local len = #args
  local step = 3000 - (3000 % width)
  if len <= step then return redis.call(cmd, key, unpack(args)) end
  local res, m = {}, 0
  for s = 1, len, step do
    local r = redis.call(cmd, key, unpack(args, s, math.min(s + step - 1, len)))
    if type(r) == 'table' then
      for x = 1, #r do m = m + 1 res[m] = r[x] end
    end
  end
  return res
end
local function write_once(key, kv)
  local len = #kv
  if len == 0 then return end
  local names = {}
  for x = 1, len / 2 do names[x] = kv[2 * x - 1] end
  local have = chunked('HMGET', key, names, 1)
  -- The absent ones, last first: HSET keeps the last value it is given for a field, so
  -- the first of duplicate fields wins.
  local fresh, m = {}, 0
  for x = len / 2, 1, -1 do
    if not have[x] then
      fresh[m + 1] = names[x]
      fresh[m + 2] = kv[2 * x]
      m = m + 2
    end
  end
  if m > 0 then chunked('HSET', key, fresh, 2) end
end
"
    };
}

/// The start of both fan-in scripts: the job must exist; parse the level's n output groups
/// (task, payload, k, k reader positions) from `ARGV[3]` on, leaving `at` at the first
/// arrival; `out` collects the answers and `comp` each arrival's completer flag. Then
/// `arrive(stride, skips)` sets the arrivals' bits (one `BITFIELD`), reads the counters of
/// their children (and their skip counters, with `skips`) into `rec` (one `HMGET`), and
/// returns the bits' old values; `count` answers one arrival from them; `flush(skips)`
/// writes back the counters that changed (one `HSET`).
macro_rules! level_head {
    () => {
        concat!(
            helpers!(),
            r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('UNKNOWN_JOB job is not in the store')
end
local n = tonumber(ARGV[2])
local wat, wk = {}, {}
local at = 3
for j = 1, n do
  local ks = ARGV[at + 2]
  local k = ks == '1' and 1 or tonumber(ks)
  wat[j] = at
  wk[j] = k
  at = at + 3 + k
end
local out = {}
local comp = {}
local rec, order = {}, {}
local function arrive(stride, skips)
  local ops, fields, m, f = {}, {}, 0, 0
  for i = at, #ARGV, stride do
    ops[m + 1] = 'SET'
    ops[m + 2] = 'u1'
    ops[m + 3] = ARGV[i]
    ops[m + 4] = '1'
    m = m + 4
    local child = ARGV[i + 1]
    if rec[child] == nil then
      rec[child] = {}
      order[#order + 1] = child
      f = f + 1
      fields[f] = child
      if skips then
        f = f + 1
        fields[f] = 's' .. child
      end
    end
  end
  local old = chunked('BITFIELD', KEYS[2], ops, 4)
  local cur = chunked('HMGET', KEYS[3], fields, 1)
  local w = skips and 2 or 1
  for x = 1, #order do
    local r, v = rec[order[x]], cur[(x - 1) * w + 1] or '0'
    if string.sub(v, 1, 1) == 'c' then
      r.c = string.sub(v, 2)
    else
      r.n = tonumber(v)
    end
    if skips then r.s = tonumber(cur[x * 2] or '0') end
  end
  return old
end
local function flush(skips)
  local kv = {}
  for x = 1, #order do
    local child = order[x]
    local r = rec[child]
    if r.dirty then
      kv[#kv + 1] = child
      if r.c then kv[#kv + 1] = 'c' .. r.c else kv[#kv + 1] = r.n end
    end
    if skips and r.sdirty then
      kv[#kv + 1] = 's' .. child
      kv[#kv + 1] = r.s
    end
  end
  if #kv > 0 then chunked('HSET', KEYS[3], kv, 2) end
end
-- A child's `needed`, parsed once per distinct string (a level's arrivals mostly share few).
local needs = {}
local function need_of(v)
  local x = needs[v]
  if not x then
    x = tonumber(v)
    needs[v] = x
  end
  return x
end
-- One arrival, given its bit's old value: (arrived, first, completer), as if each arrival
-- ran alone and in order (set the bit, count it only when it was clear, and the count that
-- reaches needed names the completer by its bit).
local function count(r, bit, needed, was)
  if was == 0 and not r.c then
    r.n = r.n + 1
    r.dirty = true
    if r.n == needed then
      r.c = bit
      return r.n, 1, 1
    end
    return r.n, 1, 0
  end
  if r.c then
    if r.c == bit then return needed, was == 0 and 1 or 0, 1 end
    return needed, was == 0 and 1 or 0, 0
  end
  return r.n, 0, 0
end
"
        )
    };
}

/// The end of both fan-in scripts: write each output (write-once) unless it has readers and
/// every one of them completed in this call (only its completer reads it, and holds it),
/// refresh the TTLs, answer.
macro_rules! level_tail {
    () => {
        r"local kv, m = {}, 0
for j = 1, n do
  local w, k = wat[j], wk[j]
  local keep = k == 0
  for r = 1, k do
    if comp[tonumber(ARGV[w + 2 + r]) + 1] ~= 1 then keep = true break end
  end
  if keep then
    kv[m + 1] = ARGV[w]
    kv[m + 2] = ARGV[w + 1]
    m = m + 2
  end
end
write_once(KEYS[4], kv)
if #kv > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[1]) end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return out
"
    };
}

/// KEYS: state, arrival bitmap, counters (hash), outputs (hash). ARGV: ttl ms, the number
/// n of outputs, n groups (task, payload, k, k reader positions), then (bit offset, child,
/// needed) triples. Sets each parent's bit, and counts it only when it was clear: a
/// retried or duplicated arrival counts once. The arrival that completes the set replaces
/// the count field with `c<bit>`, naming the completer, so that its re-arrivals are told
/// `completes` again (no other write can follow: every bit is set). Then writes each output
/// (write-once) unless it has readers and every one of them completed here: only its
/// completer reads it, and holds it. Atomic, so no reader can see a count before the
/// outputs it reads. Returns (arrived, first_time, completer) triples. A batch costs a
/// handful of Redis commands, whatever its size.
const FAN_IN: &str = concat!(
    level_head!(),
    r"
local old = arrive(3, false)
local j = 0
for i = at, #ARGV, 3 do
  j = j + 1
  local arrived, first, completer =
    count(rec[ARGV[i + 1]], ARGV[i], need_of(ARGV[i + 2]), old[j])
  out[3 * j - 2] = arrived
  out[3 * j - 1] = first
  out[3 * j] = completer
  comp[j] = completer
end
flush(false)
",
    level_tail!()
);

/// As `FAN_IN`, for arrivals that say whether their parent was skipped
/// (`docs/conditional-branches.md`). KEYS: state, arrival bitmap, counters (hash), outputs (hash).
/// ARGV: ttl ms, n, n groups (task, payload, k, k reader positions), then (bit offset, child,
/// skipped 0/1, needed) quads. A first-time skipped arrival also increments field `s<child>` of the
/// counters hash, before the count, in this one script: the skip counts once, exactly like the
/// arrival. Outputs are written after the counts, as in `FAN_IN`. Returns (arrived,
/// first_time, completer, skipped) quads; `skipped` is exact for every arrival of the
/// completer (0 otherwise, a lower bound).
const FAN_IN_FLAGGED: &str = concat!(
    level_head!(),
    r"
local old = arrive(4, true)
local j = 0
for i = at, #ARGV, 4 do
  j = j + 1
  local r = rec[ARGV[i + 1]]
  local skips = 0
  if old[j] == 0 and not r.c and ARGV[i + 2] == '1' then
    r.s = r.s + 1
    r.sdirty = true
    skips = r.s
  end
  local arrived, first, completer = count(r, ARGV[i], need_of(ARGV[i + 3]), old[j])
  if completer == 1 then skips = r.s end
  out[4 * j - 3] = arrived
  out[4 * j - 2] = first
  out[4 * j - 1] = completer
  out[4 * j] = skips
  comp[j] = completer
end
flush(true)
",
    level_tail!()
);

/// KEYS: state, outputs (hash). ARGV: ttl ms, then (task, payload) pairs. Write-once.
const PUT_OUTPUTS: &str = concat!(
    helpers!(),
    r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('UNKNOWN_JOB job is not in the store')
end
local kv = {}
for i = 2, #ARGV do kv[#kv + 1] = ARGV[i] end
write_once(KEYS[2], kv)
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"
);

/// KEYS: state, events, evseq, plan. ARGV: ttl ms, then events. Event n (1-based) gets the
/// stream id `n-1`, so a reader's cursor is the last n it saw. Returns the last n.
const APPEND_EVENTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('UNKNOWN_JOB job is not in the store')
end
local k = #ARGV - 1
local n = redis.call('INCRBY', KEYS[3], k) - k
for i = 2, #ARGV do
  n = n + 1
  redis.call('XADD', KEYS[2], string.format('%d-1', n), 'e', ARGV[i])
end
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return n
";

/// KEYS: stream. ARGV: group, consumer, ids. Resets the idle time of the entries that
/// `consumer` still holds (JUSTID: the delivery count is unchanged); entries another consumer
/// reclaimed meanwhile are left alone.
const TOUCH: &str = r"
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
";

/// KEYS: stream. ARGV: group, consumer, min idle ms, max. Claims up to max entries idle for
/// at least min idle ms (oldest first), and returns (id, delivery count, payload) triples.
/// Entries deleted meanwhile are dropped from the pending list by XAUTOCLAIM itself.
const RECLAIM: &str = r"
local out = {}
local got = 0
local want = tonumber(ARGV[4])
local start = '0-0'
for round = 1, 100 do
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], start, 'COUNT', want - got)
  for _, e in ipairs(r[2]) do
    local id, fields = e[1], e[2]
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local deliveries = 1
    if #p > 0 then deliveries = p[1][4] end
    local payload = false
    if type(fields) == 'table' then
      for j = 1, #fields, 2 do
        if fields[j] == 'i' then payload = fields[j + 1] end
      end
    end
    out[#out + 1] = id
    out[#out + 1] = deliveries
    out[#out + 1] = payload
    got = got + 1
  end
  start = r[1]
  if start == '0-0' or got >= want then break end
end
return out
";

/// KEYS: profile hash. ARGV: (op, field, value) triples; op `i` adds (saturating at
/// i64::MAX), `l` keeps the minimum, `h` the maximum. Values are decimal integers compared
/// as strings (length first), which is exact for any u64.
const MERGE_PROFILE: &str = r"
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
for i = 1, #ARGV, 3 do
  local op, f, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'i' then
    local r = redis.pcall('HINCRBY', KEYS[1], f, v)
    if type(r) == 'table' and r.err then
      redis.call('HSET', KEYS[1], f, '9223372036854775807')
    end
  else
    local cur = redis.call('HGET', KEYS[1], f)
    if (not cur) or (op == 'l' and less(v, cur)) or (op == 'h' and less(cur, v)) then
      redis.call('HSET', KEYS[1], f, v)
    end
  end
end
return 1
";

/// KEYS: outputs (hash), the job's object list (set), then per release the output's
/// object key and its reader set (the object key + `:rel`). ARGV: ttl ms, then per release
/// the reader, the number of readers, the output's field and the encoded pointer to its
/// object. Adds each reader to its set (idempotent); when a set is full the output is
/// released: its object becomes its tombstone (an inline object of no bytes, `0x00`; made,
/// and listed for the job's deletion, when there was no object), its output field (if
/// any) points at it, and the set is dropped. An output already a tombstone is left alone.
/// Returns, per freed object, its key and the manifest it had (empty for an inline object
/// or none), so that the caller unlinks the chunks.
const RELEASE_OUTPUTS: &str = r"
local freed = {}
for i = 3, #KEYS, 2 do
  local obj, set = KEYS[i], KEYS[i + 1]
  local a = 2 * (i - 3) + 2
  local cur = redis.call('GET', obj)
  if cur ~= '\0' then
    redis.call('SADD', set, ARGV[a])
    if redis.call('SCARD', set) >= tonumber(ARGV[a + 1]) then
      redis.call('DEL', set)
      if cur then
        redis.call('SET', obj, '\0', 'KEEPTTL')
      else
        redis.call('SET', obj, '\0', 'PX', ARGV[1])
        redis.call('SADD', KEYS[2], obj)
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
      end
      if redis.call('HEXISTS', KEYS[1], ARGV[a + 2]) == 1 then
        redis.call('HSET', KEYS[1], ARGV[a + 2], ARGV[a + 3])
      end
      freed[#freed + 1] = obj
      if cur and string.byte(cur, 1) == 1 then
        freed[#freed + 1] = cur
      else
        freed[#freed + 1] = ''
      end
    else
      redis.call('PEXPIRE', set, ARGV[1])
    end
  end
end
return freed
";
