-- remove.lua - KEYS: record.  -> {1} absent or {0, handle}.
local v=redis.call('GET',KEYS[1])
if not v then return {1} end
local f,c,e,h=meta(v)
drop(KEYS[1],v)
return {0,h or ''}
