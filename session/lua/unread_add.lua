-- Count a message as unread for a reader, once.
-- KEYS[1] the reader's hash: fields c:<conv> count, l:<conv> last counted seq, r:<conv> read seq, total
-- ARGV[1] conversation id, ARGV[2] seq
--
-- Returns {count, total, read seq}.

local c, l, r = 'c:' .. ARGV[1], 'l:' .. ARGV[1], 'r:' .. ARGV[1]
local seq = tonumber(ARGV[2])
-- One read of the four fields: this script runs for every reader of every message.
local got = redis.call('HMGET', KEYS[1], l, r, c, 'total')
local last = tonumber(got[1] or '0')
local read = tonumber(got[2] or '0')
local count = tonumber(got[3] or '0')
local total = tonumber(got[4] or '0')

-- A seq at or below the last counted one is a retry (or arrived late): counting it again would
-- drift the counter away from the log.
if seq > last then
  redis.call('HSET', KEYS[1], l, ARGV[2])
  if seq > read then
    count = redis.call('HINCRBY', KEYS[1], c, 1)
    total = redis.call('HINCRBY', KEYS[1], 'total', 1)
  end
end

return {count, total, read}
