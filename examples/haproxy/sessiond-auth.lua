-- sessiond-auth.lua - HAProxy forward-auth against sessiond's GET /v1/auth,
-- through HAProxy's own HTTP client (core.httpclient, HAProxy 2.5+; Debian
-- 12's haproxy 2.6 is built with Lua).  docs/deployment.md ("HAProxy").
--
-- The action "lua.sessiond_auth" sends sessiond what the nginx example's
-- auth_request sends: the client's Cookie, User-Agent, Origin,
-- Sec-Fetch-Site and X-CSRF-Token, plus the real request as
-- X-Forwarded-For (the TCP peer, never the client's own header),
-- X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Proto.  It leaves
-- sessiond's answer in transaction variables that haproxy.cfg turns into
-- upstream headers, a login redirect / JSON 401, a 403, or a Set-Cookie:
--
--   txn.sessiond_status       200, 401, 403, 503 (500 when sessiond is
--                             unreachable: fail closed)
--   txn.sessiond_user, txn.sessiond_user_encoding, txn.sessiond_handle,
--   txn.sessiond_csrf, txn.sessiond_consent, txn.sessiond_set_cookie
--
-- Only 200 lets a request through; everything else, including a timeout or
-- a connection error, refuses it.

-- Where sessiond answers (loopback or a Unix-socket-fronting listener).
local SESSIOND_AUTH_URL = os.getenv("SESSIOND_AUTH_URL") or "http://127.0.0.1:7700/v1/auth"
local TIMEOUT_MS = 2000

-- Headers copied from the client's request as they are.
local PASS = { "cookie", "user-agent", "origin", "sec-fetch-site", "x-csrf-token" }

-- sessiond's answer headers -> transaction variables.
local TAKE = {
    ["x-session-user"] = "txn.sessiond_user",
    ["x-session-user-encoding"] = "txn.sessiond_user_encoding",
    ["x-session-handle"] = "txn.sessiond_handle",
    ["x-csrf-token"] = "txn.sessiond_csrf",
    ["x-cookie-consent"] = "txn.sessiond_consent",
    ["set-cookie"] = "txn.sessiond_set_cookie",
}

-- First value of a header table entry ({[0] = v} in HAProxy's tables).
local function first(values)
    if values == nil then return nil end
    return values[0] or values[1]
end

core.register_action("sessiond_auth", { "http-req" }, function(txn)
    local req = txn.http:req_get_headers()
    local headers = {}
    for _, name in ipairs(PASS) do
        local v = first(req[name])
        if v ~= nil then headers[name] = { v } end
    end
    -- The real request, for binding and CSRF.  Set, not appended: sessiond
    -- trusts this HAProxy (binding.trusted_proxies) and would believe a
    -- client's own X-Forwarded-For otherwise (address spoofing).
    headers["x-forwarded-for"] = { txn.f:src() }
    headers["x-forwarded-method"] = { txn.f:method() }
    headers["x-forwarded-proto"] = { txn.f:ssl_fc() == 1 and "https" or "http" }
    local host = first(req["host"])
    if host ~= nil then headers["x-forwarded-host"] = { host } end

    local hc = core.httpclient()
    local ok, res = pcall(hc.get, hc, { url = SESSIOND_AUTH_URL, headers = headers,
                                        timeout = TIMEOUT_MS })
    local status = 500
    if ok and res ~= nil and res.status ~= nil and res.status ~= 0 then
        status = res.status
    end
    txn:set_var("txn.sessiond_status", status)
    if status ~= 200 then return end
    for name, var in pairs(TAKE) do
        local v = first(res.headers and res.headers[name])
        if v ~= nil and v ~= "" then txn:set_var(var, v) end
    end
end, 0)
