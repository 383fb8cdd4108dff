-- insert.lua - KEYS: record, handle, user.  ARGV: value, now, max, deny,
-- ttl, exp, created.  -> {0, handle1, name1, ...} or {1} key taken, {2}
-- handle taken, {3} limit.
local rn,hn,un=KEYS[1],KEYS[2],KEYS[3]
local v,now,max=ARGV[1],tonumber(ARGV[2]),tonumber(ARGV[3])
local nf,nc,ne,nh=meta(v)
if not nf then return redis.error_reply('ERR bad record') end
local cur=redis.call('GET',rn)
if cur then local f,c,e=meta(cur) if f and e>now then return {1} end end
local hown,hval=nil,nil
if indexed(nf) then
 local hv=redis.call('GET',hn)
 if hv and hv~=rn then
  local ov=redis.call('GET',hv)
  local f,c,e,h=meta(ov)
  if f and indexed(f) and h==nh then
   if e>now then return {2} end
   hown,hval=hv,ov
  end
 end
end
local evict={}
if indexed(nf) and max>0 then
 local ms=redis.call('ZRANGE',un,0,-1)
 local live={}
 local user=string.sub(un,NAME_REST)
 for i=1,#ms do
  local m=ms[i]
  local mv=redis.call('GET',m)
  if not mv then redis.call('ZREM',un,m)
  elseif m~=rn and m~=hown then
   local f,c,e,h,u=meta(mv)
   if f and indexed(f) and e>now and u==user then live[#live+1]={m,mv,c} end
  end
 end
 if #live>=max then
  if ARGV[4]=='1' then return {3} end
  table.sort(live,function(a,b) if a[3]~=b[3] then return a[3]<b[3] end
   return bless(string.sub(a[1],NAME_REST),string.sub(b[1],NAME_REST)) end)
  for i=1,#live-max+1 do evict[#evict+1]=live[i] end
 end
end
if cur then drop(rn,cur) end
if hown then drop(hown,hval) end
local out={0}
for i=1,#evict do
 local f,c,e,h=meta(evict[i][2])
 drop(evict[i][1],evict[i][2])
 out[#out+1]=h out[#out+1]=evict[i][1]
end
put(rn,v,tonumber(ARGV[5]),ARGV[6],ARGV[7])
return out
