-- replace.lua - KEYS: old record, new record, new handle, new user.  ARGV:
-- expect, next value, now, next ttl, next exp, next created, tomb value or
-- "", tomb ttl, tomb exp, tomb created.  -> 0, 1 absent, 2 conflict, 3 new
-- key taken, 4 handle taken.
local orn,nrn,nhn=KEYS[1],KEYS[2],KEYS[3]
local now=tonumber(ARGV[3])
local ov=redis.call('GET',orn)
if not ov then return 1 end
local of,oc,oe=meta(ov)
if not of then return redis.error_reply('ERR bad record') end
if oe<=now then return 1 end
if string.sub(ov,HDR+1)~=ARGV[1] then return 2 end
local nv=ARGV[2]
local nf,nc,ne,nh=meta(nv)
if not nf then return redis.error_reply('ERR bad record') end
local taken=redis.call('GET',nrn)
if taken then local f,c,e=meta(taken) if f and e>now then return 3 end end
local hown,hval=nil,nil
if indexed(nf) then
 local hv=redis.call('GET',nhn)
 if hv and hv~=orn and hv~=nrn then
  local xv=redis.call('GET',hv)
  local f,c,e,h=meta(xv)
  if f and indexed(f) and h==nh then
   if e>now then return 4 end
   hown,hval=hv,xv
  end
 end
end
if taken then drop(nrn,taken) end
if hown then drop(hown,hval) end
drop(orn,ov)
if ARGV[7]~='' then put(orn,ARGV[7],tonumber(ARGV[8]),ARGV[9],ARGV[10]) end
put(nrn,nv,tonumber(ARGV[4]),ARGV[5],ARGV[6])
return 0
