-- update.lua - KEYS: record.  ARGV: expect, blob, expires (8 bytes), now,
-- ttl, exp.  -> 0 done, 1 absent, 2 conflict.
local rn=KEYS[1]
local v=redis.call('GET',rn)
if not v then return 1 end
local f,c,e,h,u=meta(v)
if not f then return redis.error_reply('ERR bad record') end
if e<=tonumber(ARGV[4]) then return 1 end
if string.sub(v,HDR+1)~=ARGV[1] then return 2 end
local ttl=tonumber(ARGV[5])
redis.call('SET',rn,string.sub(v,1,O_EXPIRES-1)..ARGV[3]..string.sub(v,O_EXPIRES+8,HDR)..ARGV[2],'EX',ttl)
local t=string.sub(rn,2,TAG_LAST)
redis.call('ZADD','x'..t,ARGV[6],rn)
if indexed(f) then
 redis.call('ZADD','c'..t,ARGV[6],rn)
 local hn=hname(rn,f,h)
 if redis.call('GET',hn)==rn then redis.call('EXPIRE',hn,ttl) end
 local un='u'..tag(u)..u
 local cur=redis.call('TTL',un)
 if cur>=-1 and cur<ttl then redis.call('EXPIRE',un,ttl) end
end
return 0
