-- Append one message to a conversation's hot log: dedupe, next seq, store, mark dirty, atomically.
-- KEYS[1] seq counter, KEYS[2] dedupe hash, KEYS[3] log sorted set, KEYS[4] dirty set
-- ARGV[1] client_msg_id, ARGV[2] message JSON up to the seq value, ARGV[3] the JSON after it,
-- ARGV[4] conversation id (the dirty set's member)
--
-- Returns {'reseed'} when the counter is missing, {'dup', seq, stored JSON or ''} for a resend,
-- {'new', seq} for a new message.

-- The counter is checked before the dedupe hash: a missing counter means Redis lost this
-- conversation's keys, and then the dedupe hash cannot be trusted either.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'reseed'}
end

local seq = redis.call('HGET', KEYS[2], ARGV[1])
if seq then
  -- the hot copy may have been trimmed after its flush; Go then reads the warm store
  local stored = redis.call('ZRANGE', KEYS[3], seq, seq, 'BYSCORE')
  return {'dup', tonumber(seq), stored[1] or ''}
end

seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[3], seq, ARGV[2] .. seq .. ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], seq)
redis.call('SADD', KEYS[4], ARGV[4])
return {'new', seq}
