-- Trim the warm prefix of a conversation's hot log: remove the messages up to a seq, but never one
-- that is not yet in the warm store and never one of the newest ARGV[2].
-- KEYS[1] log sorted set, KEYS[2] flushed marker
-- ARGV[1] the highest seq the caller found old enough to trim, ARGV[2] how many newest messages stay
--
-- Returns {removed, left in the log}. The seq counter and the dedupe hash are not touched.

local bound = tonumber(ARGV[1])

-- Only what is warm. The marker is read here, in the same atomic step as the removal: a flush that
-- raced the caller's reads can only have raised it, and nothing above it is ever removed.
local flushed = tonumber(redis.call('GET', KEYS[2]) or '0')
if flushed < bound then
  bound = flushed
end

-- The newest messages stay, whatever the caller read: messages may have come in meanwhile.
local keep = tonumber(ARGV[2])
local card = redis.call('ZCARD', KEYS[1])
if card <= keep then
  return {0, card}
end
local edge = redis.call('ZRANGE', KEYS[1], card - keep - 1, card - keep - 1, 'WITHSCORES')
local top = tonumber(edge[2])
if top < bound then
  bound = top
end
if bound < 1 then
  return {0, card}
end

-- A prefix by seq: what stays hot is always the consecutive tail that reads expect.
local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', bound)
return {removed, card - removed}
