-- purge.lua - KEYS: x{tag}.  ARGV: now, max.  -> {n, name, value, name, value...}
-- (the values let the caller report each expiry once: lifecycle events)
local now=tonumber(ARGV[1])
local ms=redis.call('ZRANGEBYSCORE',KEYS[1],'-inf',ARGV[1],'LIMIT',0,tonumber(ARGV[2]))
local out={0}
for i=1,#ms do
 local v=redis.call('GET',ms[i])
 if not v then
  redis.call('ZREM',KEYS[1],ms[i]) redis.call('ZREM','c'..string.sub(KEYS[1],2),ms[i])
 else
  local f,c,e=meta(v)
  if not f or e<=now then drop(ms[i],v) out[1]=out[1]+1 out[#out+1]=ms[i] out[#out+1]=v
  else redis.call('ZADD',KEYS[1],e,ms[i]) end
 end
end
return out
