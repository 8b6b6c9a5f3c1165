-- Mark a conversation read up to a seq for a reader, keeping the total equal to the sum.
-- KEYS[1] the reader's hash: fields c:<conv> count, l:<conv> last counted seq, r:<conv> read seq, total
-- ARGV[1] conversation id, ARGV[2] seq
--
-- Returns {count, total, read seq}.

local c, l, r = 'c:' .. ARGV[1], 'l:' .. ARGV[1], 'r:' .. ARGV[1]
local seq = tonumber(ARGV[2])
local read = tonumber(redis.call('HGET', KEYS[1], r) or '0')

if seq > read then
  read = seq
  redis.call('HSET', KEYS[1], r, ARGV[2])
  -- The counter does not remember which seqs it counted, so at most the ones above seq stay unread.
  local keep = tonumber(redis.call('HGET', KEYS[1], l) or '0') - seq
  if keep < 0 then
    keep = 0
  end
  local count = tonumber(redis.call('HGET', KEYS[1], c) or '0')
  if count > keep then
    redis.call('HSET', KEYS[1], c, keep)
    redis.call('HINCRBY', KEYS[1], 'total', keep - count)
  end
end

return {
  tonumber(redis.call('HGET', KEYS[1], c) or '0'),
  tonumber(redis.call('HGET', KEYS[1], 'total') or '0'),
  read,
}
