-- remove_user.lua - KEYS: user.  ARGV: now, except handle or "".
-- -> {n, name...}
local ms=redis.call('ZRANGE',KEYS[1],0,-1)
local now=tonumber(ARGV[1])
local out={0}
for i=1,#ms do
 local v=redis.call('GET',ms[i])
 if not v then redis.call('ZREM',KEYS[1],ms[i])
 else
  local f,c,e,h=meta(v)
  if not (ARGV[2]~='' and h==ARGV[2]) then
   if f and e>now then out[1]=out[1]+1 end
   drop(ms[i],v) out[#out+1]=ms[i]
  end
 end
end
return out
