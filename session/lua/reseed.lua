-- Re-seed a conversation whose seq counter is missing, from the warm store's records, in chunks.
-- KEYS[1] seq counter, KEYS[2] dedupe hash, KEYS[3] log sorted set, KEYS[4] flushed marker
-- ARGV[1] the warm store's last seq, ARGV[2] '1' on the final chunk, ARGV[3..] client_msg_id, seq pairs
--
-- Returns the counter when it exists (set by another node, or by this final chunk), -1 after a
-- non-final chunk.

-- Another node re-seeded first: its counter may already have moved on, so never touch it (SET NX).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return tonumber(redis.call('GET', KEYS[1]))
end

-- HSETNX: a record that survived in Redis is never replaced.
for i = 3, #ARGV, 2 do
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[2] ~= '1' then
  return -1
end

-- The counter must not go below any seq handed out: the warm store's, and also any that survived
-- in the hot log or the flushed marker (when only the counter key was lost).
local seq = tonumber(ARGV[1])
local top = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) > seq then
  seq = tonumber(top[2])
end
local flushed = tonumber(redis.call('GET', KEYS[4]) or '0')
if flushed > seq then
  seq = flushed
end

-- Hot messages the warm store has not seen yet still need their dedupe records.
local unflushed = redis.call('ZRANGE', KEYS[3], '(' .. ARGV[1], '+inf', 'BYSCORE', 'WITHSCORES')
for i = 1, #unflushed, 2 do
  local m = cjson.decode(unflushed[i])
  redis.call('HSETNX', KEYS[2], m.client_msg_id, unflushed[i + 1])
end

redis.call('SET', KEYS[1], seq)
return seq
