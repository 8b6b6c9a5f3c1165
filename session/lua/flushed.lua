-- Record that a conversation's hot messages up to a seq are in the warm store.
-- KEYS[1] flushed marker, KEYS[2] log sorted set, KEYS[3] dirty set
-- ARGV[1] highest seq now in the warm store, ARGV[2] conversation id (the dirty set's member)
--
-- Returns 1 when nothing newer is left to flush and the conversation left the dirty set, else 0.

-- Monotonic: a slower flusher that finished an older batch never moves the marker back.
local cur = redis.call('GET', KEYS[1]) or '0'
if tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1])
  cur = ARGV[1]
end

-- A message appended meanwhile is above the marker: the conversation stays dirty.
if redis.call('ZCOUNT', KEYS[2], '(' .. cur, '+inf') == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
  return 1
end
return 0
