-- wrk script for scripts/bench/soak: a mix of the grants and endpoints that exist, one kind per
-- request, in a fixed cycle (so every thread sends the same mix):
--   token_basic   client_credentials, client_secret_basic
--   token_pkj     client_credentials, private_key_jwt (pre-signed ES256 assertions, each used
--                 once; paced at BENCH_PKJ_RATE per second over all threads, so a file signed
--                 ahead covers the whole run; when a thread is ahead of its pace or out of
--                 assertions it sends token_basic instead and counts it as "pkj_deferred")
--   introspect    RFC 7662, a resource server introspecting one token
--   revoke        RFC 7009, a client revoking its own token (the same one, again and again)
--   authorize     GET /oauth2/authorize from a logged-in browser that consented (BENCH_COOKIE):
--                 a 303 with a fresh code, kept in this thread's queue of codes
--   code          authorization_code with PKCE, exchanging the oldest code of the queue (none
--                 yet: token_basic instead); its refresh token joins the queue of refresh tokens
--   refresh       refresh_token, rotating the oldest refresh token of the queue (none yet:
--                 token_basic instead); the new one joins the queue
-- Environment (set by scripts/bench/soak): BENCH_TENANT, BENCH_SERVER, BENCH_BASIC (the
-- Authorization value of the token client), BENCH_RESOURCE_BASIC, BENCH_REVOKER_BASIC,
-- BENCH_INTROSPECT_TOKEN, BENCH_REVOKE_TOKEN, BENCH_ASSERTIONS (file), BENCH_ASSERTION_START
-- and BENCH_ASSERTION_COUNT (this run's lines: each wrk run gets its own, never reused),
-- BENCH_PKJ_RATE, BENCH_WRK_THREADS, BENCH_COOKIE, BENCH_AUTHORIZE_PATH, BENCH_WEB_BASIC,
-- BENCH_CODE_SUFFIX.
-- done() prints "non200: N", a breakdown by status, and requests sent by kind.

local function env(name)
  local v = os.getenv(name)
  if not v or v == "" then
    io.stderr:write(name .. " must be set\n")
    os.exit(2)
  end
  return v
end

local base = "/" .. env("BENCH_TENANT") .. "/" .. env("BENCH_SERVER")
local token_path = base .. "/oauth2/token"
local introspect_path = base .. "/oauth2/introspect"
local revoke_path = base .. "/oauth2/revoke"
local basic = env("BENCH_BASIC")
local resource_basic = env("BENCH_RESOURCE_BASIC")
local revoker_basic = env("BENCH_REVOKER_BASIC")
local introspect_body = "token=" .. env("BENCH_INTROSPECT_TOKEN") .. "&token_type_hint=access_token"
local revoke_body = "token=" .. env("BENCH_REVOKE_TOKEN")
local assertions_path = env("BENCH_ASSERTIONS")
local assertion_start = tonumber(env("BENCH_ASSERTION_START"))
local assertion_count = tonumber(env("BENCH_ASSERTION_COUNT"))
local pkj_rate = tonumber(env("BENCH_PKJ_RATE"))
local nthreads = tonumber(env("BENCH_WRK_THREADS"))
local cookie = env("BENCH_COOKIE")
local authorize_path = env("BENCH_AUTHORIZE_PATH")
local web_basic = env("BENCH_WEB_BASIC")
local code_suffix = env("BENCH_CODE_SUFFIX")
-- Most refresh tokens a thread keeps; beyond, the oldest are dropped (they stay valid until
-- they expire, like those of an application that stopped refreshing).
local max_queue = 1000

local form = "application/x-www-form-urlencoded"
local pkj_prefix = "grant_type=client_credentials"
  .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
  .. "&client_assertion="

-- The cycle: 20 requests, 35% / 15% / 20% / 10% / 5% / 5% / 10%.
local cycle = {
  "token_basic", "introspect", "token_pkj", "authorize", "refresh",
  "token_basic", "revoke", "token_basic", "introspect", "token_pkj",
  "code", "introspect", "token_basic", "revoke", "token_basic",
  "token_pkj", "introspect", "token_basic", "refresh", "token_basic",
}

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function init(args)
  sent = {}
  failed = {}
  pkj_deferred = 0
  position = index
  local share = math.floor(assertion_count / nthreads)
  local first = assertion_start + index * share
  local last = first + share - 1
  assertions = {}
  local n = 0
  for line in io.lines(assertions_path) do
    if n > last then break end
    if n >= first and #line > 0 then assertions[#assertions + 1] = line end
    n = n + 1
  end
  used = 0
  started = os.time()
  per_thread_rate = pkj_rate / nthreads
  codes, code_head, code_tail = {}, 1, 0
  refresh, refresh_head, refresh_tail = {}, 1, 0
end

local function pop(queue, head, tail)
  if head > tail then return nil, head end
  local v = queue[head]
  queue[head] = nil
  return v, head + 1
end

local function headers(auth)
  local h = { ["Content-Type"] = form, ["Accept"] = "application/json" }
  if auth then h["Authorization"] = auth end
  return h
end

local function request_for(kind)
  if kind == "token_pkj" then
    local allowed = (os.time() - started + 1) * per_thread_rate
    if used < allowed and used < #assertions then
      used = used + 1
      return kind, wrk.format("POST", token_path, headers(nil), pkj_prefix .. assertions[used])
    end
    pkj_deferred = pkj_deferred + 1
    kind = "token_basic"
  end
  if kind == "token_basic" then
    return kind, wrk.format("POST", token_path, headers(basic), "grant_type=client_credentials")
  elseif kind == "introspect" then
    return kind, wrk.format("POST", introspect_path, headers(resource_basic), introspect_body)
  elseif kind == "revoke" then
    return kind, wrk.format("POST", revoke_path, headers(revoker_basic), revoke_body)
  end
  if kind == "authorize" then
    return kind, wrk.format("GET", authorize_path, { ["Cookie"] = cookie }, nil)
  elseif kind == "code" then
    local code
    code, code_head = pop(codes, code_head, code_tail)
    if code then
      return kind, wrk.format("POST", token_path, headers(web_basic),
        "grant_type=authorization_code&code=" .. code .. code_suffix)
    end
  elseif kind == "refresh" then
    local token
    token, refresh_head = pop(refresh, refresh_head, refresh_tail)
    if token then
      return kind, wrk.format("POST", token_path, headers(web_basic),
        "grant_type=refresh_token&refresh_token=" .. token)
    end
  end
  return "token_basic", wrk.format("POST", token_path, headers(basic), "grant_type=client_credentials")
end

function request()
  position = position + 1
  local kind, req = request_for(cycle[(position % #cycle) + 1])
  sent[kind] = (sent[kind] or 0) + 1
  return req
end

-- Responses carry no connection or request identity in wrk, so failures are counted by
-- status only; the server's own metrics (sampled by the soak script) break them down.
-- What a response carries tells its kind: a code in the Location of a 303 (an
-- authorization), a refresh token in the body (a code exchange or a refresh).
function response(status, headers, body)
  if status == 303 then
    local location = headers["location"] or headers["Location"]
    local code = location and location:match("[?&]code=([^&]+)")
    if code then
      code_tail = code_tail + 1
      codes[code_tail] = code
      return
    end
  end
  if status ~= 200 then
    local key = tostring(status)
    failed[key] = (failed[key] or 0) + 1
    return
  end
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then
    refresh_tail = refresh_tail + 1
    refresh[refresh_tail] = token
    if refresh_tail - refresh_head >= max_queue then
      refresh[refresh_head] = nil
      refresh_head = refresh_head + 1
    end
  end
end

function done(summary, latency, requests)
  local total = 0
  local by = {}
  local kinds = {}
  local deferred = 0
  for _, thread in ipairs(threads) do
    local f = thread:get("failed")
    if type(f) == "table" then
      for k, v in pairs(f) do
        by[k] = (by[k] or 0) + v
        total = total + v
      end
    end
    local s = thread:get("sent")
    if type(s) == "table" then
      for k, v in pairs(s) do kinds[k] = (kinds[k] or 0) + v end
    end
    deferred = deferred + (thread:get("pkj_deferred") or 0)
  end
  io.write(string.format("non200: %d\n", total))
  for k, v in pairs(by) do io.write(string.format("non200 status %s: %d\n", k, v)) end
  for k, v in pairs(kinds) do io.write(string.format("sent %s: %d\n", k, v)) end
  io.write(string.format("pkj_deferred: %d\n", deferred))
end
