-- Claim capacity units of an agent for a session, atomically: the only way a slot is taken.
-- KEYS[1] load hash (agent id -> units held), KEYS[2] held hash (session id -> "agent:units:op"),
-- KEYS[3] claim log stream. All three share the shop's hash tag {r:<shop>}.
-- ARGV[1] agent id, ARGV[2] session id, ARGV[3] units, ARGV[4] capacity,
-- ARGV[5] "1" for a forced (manual) claim, which does not check the capacity,
-- ARGV[6] the log's approximate maximum length, "0" for unbounded.
--
-- Returns {1, load after} when the session holds the agent's slot now, {0, load} when it did not fit.

local agent, session = ARGV[1], ARGV[2]
local units, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local force = ARGV[5] == '1'

local function log(fields)
  if ARGV[6] == '0' then
    redis.call('XADD', KEYS[3], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
  end
end

local held = redis.call('HGET', KEYS[2], session)
local hagent, hunits
if held then
  hagent, hunits = string.match(held, '^(%d+):(%d+)')
  hunits = tonumber(hunits)
  -- The same session claimed twice counts once.
  if hagent == agent then
    return {1, tonumber(redis.call('HGET', KEYS[1], agent) or '0')}
  end
end

local load = tonumber(redis.call('HGET', KEYS[1], agent) or '0')
if not force and load + units > cap then
  return {0, load}
end

-- A session held elsewhere moves: its old units go back in the same step.
if held then
  local left = redis.call('HINCRBY', KEYS[1], hagent, -hunits)
  if left <= 0 then
    redis.call('HDEL', KEYS[1], hagent)
    left = 0
  end
  log({'op', 'release', 'agent', hagent, 'session', session, 'units', hunits, 'cap', 0, 'load', left})
end

local op = 'claim'
if force then op = 'force' end
load = redis.call('HINCRBY', KEYS[1], agent, units)
redis.call('HSET', KEYS[2], session, agent .. ':' .. units .. ':' .. op)
log({'op', op, 'agent', agent, 'session', session, 'units', units, 'cap', cap, 'load', load})
return {1, load}
