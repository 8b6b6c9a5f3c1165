-- Release a session's capacity units, atomically and idempotently.
-- KEYS[1] load hash, KEYS[2] held hash, KEYS[3] claim log stream (as in claim.lua).
-- ARGV[1] agent id, or "0" to release whoever holds the session, ARGV[2] session id,
-- ARGV[3] the log's approximate maximum length, "0" for unbounded.
--
-- Returns {agent id, units, 1 if the claim was forced else 0} when units were released, an empty
-- array when the session held nothing (of that agent).

local held = redis.call('HGET', KEYS[2], ARGV[2])
if not held then
  return {}
end
local hagent, hunits, hop = string.match(held, '^(%d+):(%d+):(%a+)$')
if ARGV[1] ~= '0' and hagent ~= ARGV[1] then
  return {}
end
local left = redis.call('HINCRBY', KEYS[1], hagent, -tonumber(hunits))
if left <= 0 then
  redis.call('HDEL', KEYS[1], hagent)
  left = 0
end
redis.call('HDEL', KEYS[2], ARGV[2])
local fields = {'op', 'release', 'agent', hagent, 'session', ARGV[2], 'units', hunits, 'cap', 0, 'load', left}
if ARGV[3] == '0' then
  redis.call('XADD', KEYS[3], '*', unpack(fields))
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
local forced = 0
if hop == 'force' then forced = 1 end
return {tonumber(hagent), tonumber(hunits), forced}
