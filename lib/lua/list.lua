-- list.lua - KEYS: user.  ARGV: now.  -> {name1, value1, ...}
local ms=redis.call('ZRANGE',KEYS[1],0,-1)
local now=tonumber(ARGV[1])
local user=string.sub(KEYS[1],NAME_REST)
local out={}
for i=1,#ms do
 local v=redis.call('GET',ms[i])
 local f,c,e,h,u=meta(v)
 if f and indexed(f) and e>now and u==user then out[#out+1]=ms[i] out[#out+1]=v end
end
return out
