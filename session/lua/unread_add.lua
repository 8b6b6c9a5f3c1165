-- Count a message as unread for a reader, once.
-- KEYS[1] the reader's hash: fields c:<conv> count, l:<conv> last counted seq, r:<conv> read seq, total
-- ARGV[1] conversation id, ARGV[2] seq
--
-- Returns {count, total, read seq}.

local c, l, r = 'c:' .. ARGV[1], 'l:' .. ARGV[1], 'r:' .. ARGV[1]
local seq = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], l) or '0')
local read = tonumber(redis.call('HGET', KEYS[1], r) or '0')

-- A seq at or below the last counted one is a retry (or arrived late): counting it again would
-- drift the counter away from the log.
if seq > last then
  redis.call('HSET', KEYS[1], l, ARGV[2])
  if seq > read then
    redis.call('HINCRBY', KEYS[1], c, 1)
    redis.call('HINCRBY', KEYS[1], 'total', 1)
  end
end

return {
  tonumber(redis.call('HGET', KEYS[1], c) or '0'),
  tonumber(redis.call('HGET', KEYS[1], 'total') or '0'),
  read,
}
