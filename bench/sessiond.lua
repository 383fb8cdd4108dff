-- sessiond.lua - wrk script for the sessiond rows of bench/run.py.
--
-- Environment (set by the runner):
--   BENCH_MODE    auth_valid | auth_invalid | validate | create | destroy |
--                 token_mint | token_refresh | token_introspect
--                 (token_*: BENCH_IDS holds session IDs for token_mint,
--                 refresh tokens for token_refresh, access tokens for
--                 token_introspect)
--   BENCH_IDS     file of session IDs, one a line (auth_valid, validate,
--                 destroy); made by POST /v1/sessions or libbench populate
--   BENCH_UA      User-Agent: must equal the one the sessions were made
--                 with (binding.user_agent), wrk sends none by default
--   BENCH_COOKIE  cookie name (sessiond)
--
-- auth_valid and validate pick an ID at random per request; destroy walks
-- its thread's own slice of the file so that every ID is destroyed once
-- (when the slice runs out the IDs repeat and the answers become 404:
-- the runner reports non-2xx answers).  create makes one new user per
-- request.  The client IP of every session is 127.0.0.1 (the TCP peer).

local mode   = os.getenv("BENCH_MODE") or "auth_valid"
local ua     = os.getenv("BENCH_UA") or "sessiond-bench/1 (wrk)"
local cname  = os.getenv("BENCH_COOKIE") or "sessiond"
local path   = os.getenv("BENCH_IDS")

local nthreads = 0
function setup(thread)
   thread:set("tid", nthreads)
   nthreads = nthreads + 1
end

local ids, n = {}, 0
local counter = 0
local headers = {}
local client_json = '"client":{"ip":"127.0.0.1","user_agent":"' .. ua .. '"}'

function init(args)
   if path ~= nil and mode ~= "create" and mode ~= "auth_invalid" then
      for line in io.lines(path) do
         if #line == 43 or (mode:sub(1, 6) == "token_" and #line > 0) then
            n = n + 1; ids[n] = line
         end
      end
      if n == 0 then error("no session IDs in " .. path) end
   end
   local t = tid or 0
   math.randomseed(os.time() * 1000 + t * 7919)
   counter = t * 1000003
   headers["User-Agent"] = ua
   if mode == "auth_invalid" then
      -- well formed (43 base64url characters) but unknown: a store miss
      headers["Cookie"] = cname .. "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
   end
   if mode == "validate" or mode == "create" or mode == "destroy" or
      mode:sub(1, 6) == "token_" then
      headers["Content-Type"] = "application/json"
   end
end

local T = tonumber(os.getenv("BENCH_THREADS") or "2")

function request()
   if mode == "auth_valid" then
      headers["Cookie"] = cname .. "=" .. ids[math.random(n)]
      return wrk.format("GET", "/v1/auth", headers)
   elseif mode == "auth_invalid" then
      return wrk.format("GET", "/v1/auth", headers)
   elseif mode == "validate" then
      return wrk.format("POST", "/v1/sessions/validate", headers,
         '{"session_id":"' .. ids[math.random(n)] .. '",' .. client_json .. '}')
   elseif mode == "create" then
      counter = counter + 1
      return wrk.format("POST", "/v1/sessions", headers,
         '{"user_id":"wrk-' .. counter .. '",' .. client_json .. ',"data":{}}')
   elseif mode == "destroy" then
      -- thread t takes IDs t+1, t+1+T, t+1+2T, ...
      local i = ((tid or 0) + counter * T) % n + 1
      counter = counter + 1
      return wrk.format("POST", "/v1/sessions/destroy", headers,
         '{"session_id":"' .. ids[i] .. '"}')
   elseif mode == "token_mint" then
      return wrk.format("POST", "/v1/tokens", headers,
         '{"session_id":"' .. ids[math.random(n)] .. '",' .. client_json ..
         ',"audience":"api.bench"}')
   elseif mode == "token_refresh" then
      -- like destroy: each thread spends its own slice once (a token used
      -- again is a grace replay, then a theft: the runner reports non-2xx)
      local i = ((tid or 0) + counter * T) % n + 1
      counter = counter + 1
      return wrk.format("POST", "/v1/tokens/refresh", headers,
         '{"refresh_token":"' .. ids[i] .. '"}')
   elseif mode == "token_introspect" then
      return wrk.format("POST", "/v1/tokens/introspect", headers,
         '{"token":"' .. ids[math.random(n)] .. '"}')
   end
end
