-- prelude.lua - shared by every script of the Redis store (lib/store_redis.c):
-- header parsing, names, drop and put.  The layout constants (V1, HDR,
-- O_FLAGS, O_CREATED, O_EXPIRES, O_HANDLE, O_USER, HANDLE_LEN, USER_LEN,
-- TAG_LAST, NAME_REST) come from the C definitions (RV_*, NAME_PREFIX):
-- store_redis.c writes them as Lua locals before this text, so the
-- offsets have one source.  Offsets here are 1-based, as Lua's.
local function u64(s,o) local v=0 for i=o,o+7 do v=v*256+string.byte(s,i) end return v end
local function meta(v)
 if type(v)~='string' or #v<HDR or string.byte(v,1)~=V1 then return nil end
 local f=0 for i=O_FLAGS,O_FLAGS+3 do f=f*256+string.byte(v,i) end
 return f,u64(v,O_CREATED),u64(v,O_EXPIRES),string.sub(v,O_HANDLE,O_HANDLE+HANDLE_LEN-1),string.sub(v,O_USER,O_USER+USER_LEN-1)
end
local function tag(b) return string.format('{%04x}',(string.byte(b,1)%64)*256+string.byte(b,2)) end
local function indexed(f) return f%2==0 end
-- A cluster entry whose handle is not routed to its user (a session issued
-- by a store that does not route, store_redis.c "Legacy entries") keeps
-- its handle name under the record's tag: flag bit 31 (LEG) says so.
local LEG=2147483648
local function hname(rn,f,h)
 if f>=LEG then return 'h'..string.sub(rn,2,TAG_LAST)..h end
 return 'h'..tag(h)..h
end
local function drop(rn,v)
 redis.call('DEL',rn)
 local t=string.sub(rn,2,TAG_LAST)
 redis.call('ZREM','x'..t,rn) redis.call('ZREM','c'..t,rn)
 local f,c,e,h,u=meta(v)
 if f and indexed(f) then
  local hn=hname(rn,f,h)
  if redis.call('GET',hn)==rn then redis.call('DEL',hn) end
  redis.call('ZREM','u'..tag(u)..u,rn)
 end
end
local function put(rn,v,ttl,exp,created)
 local f,c,e,h,u=meta(v)
 redis.call('SET',rn,v,'EX',ttl)
 local t=string.sub(rn,2,TAG_LAST)
 redis.call('ZADD','x'..t,exp,rn)
 if indexed(f) then
  redis.call('ZADD','c'..t,exp,rn)
  redis.call('SET',hname(rn,f,h),rn,'EX',ttl)
  local un='u'..tag(u)..u
  redis.call('ZADD',un,created,rn)
  if redis.call('TTL',un)<ttl then redis.call('EXPIRE',un,ttl) end
 end
end
local function bless(a,b)
 local n=math.min(#a,#b)
 for i=1,n do local x,y=string.byte(a,i),string.byte(b,i) if x~=y then return x<y end end
 return #a<#b
end
