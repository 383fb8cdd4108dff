-- find.lua - KEYS: handle.  ARGV: now, handle.  -> record name or nil.
local rn=redis.call('GET',KEYS[1])
if not rn then return false end
local f,c,e,h=meta(redis.call('GET',rn))
if f and indexed(f) and e>tonumber(ARGV[1]) and h==ARGV[2] then return rn end
return false
