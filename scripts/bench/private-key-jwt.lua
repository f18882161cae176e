-- wrk script: client_credentials token requests authenticated with private_key_jwt (RFC 7523).
-- Each request carries its own pre-signed ES256 assertion (unique jti: the server refuses a
-- replay), read from a file written by scripts/bench/private-key-jwt.py, one per line.
-- Environment (set by scripts/bench/private-key-jwt):
--   BENCH_ASSERTIONS        the file
--   BENCH_ASSERTION_START   first line (0-based) this run may use
--   BENCH_ASSERTION_COUNT   lines this run may use; thread i of T takes the i-th contiguous share
--   BENCH_WRK_THREADS       T, the wrk thread count of this run
--   BENCH_BODY              the request's own parameters (default: grant_type=client_credentials;
--                           scripts/bench/par sends an authorization request)
--   BENCH_OK_STATUS         the success status (default 200; 201 at PAR)
-- A thread that runs out of assertions stops sending requests (it never reuses one) and says so.
-- done() prints "non200: N" (summed over all threads), a per-status breakdown, and "exhausted".

local path = os.getenv("BENCH_ASSERTIONS")
local start = tonumber(os.getenv("BENCH_ASSERTION_START") or "")
local count = tonumber(os.getenv("BENCH_ASSERTION_COUNT") or "")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "")
if not path or not start or not count or not nthreads then
  io.stderr:write("BENCH_ASSERTIONS, BENCH_ASSERTION_START, BENCH_ASSERTION_COUNT and BENCH_WRK_THREADS must be set\n")
  os.exit(2)
end

local ok_status = tonumber(os.getenv("BENCH_OK_STATUS") or "200")
-- BENCH_BODY_PREFIX replaces the body before the assertion (scripts/bench/jwt-bearer sends
-- `grant_type=…jwt-bearer&assertion=`), BENCH_AUTHORIZATION adds that header.
local prefix = os.getenv("BENCH_BODY_PREFIX")
if not prefix or prefix == "" then
  prefix = (os.getenv("BENCH_BODY") or "grant_type=client_credentials")
    .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    .. "&client_assertion="
end
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  headers["Authorization"] = authorization
end

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  statuses = {}
  exhausted = 0
  local share = math.floor(count / nthreads)
  local first = start + index * share
  local last = first + share - 1
  assertions = {}
  local n = 0
  for line in io.lines(path) do
    if n > last then break end
    if n >= first and #line > 0 then
      assertions[#assertions + 1] = line
    end
    n = n + 1
  end
  used = 0
end

function request()
  used = used + 1
  local a = assertions[used]
  if not a then
    -- Never reuse an assertion: send something the server refuses cheaply and count it.
    exhausted = exhausted + 1
    a = "exhausted"
  end
  return wrk.format("POST", nil, headers, prefix .. a)
end

function response(status, headers, body)
  if status ~= ok_status then
    non200 = non200 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total, out = 0, 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non200") or 0)
    out = out + (thread:get("exhausted") or 0)
    local s = thread:get("statuses")
    if type(s) == "table" then
      for k, v in pairs(s) do
        by_status[k] = (by_status[k] or 0) + v
      end
    end
  end
  io.write(string.format("non200: %d\n", total))
  for k, v in pairs(by_status) do
    io.write(string.format("non200 status %s: %d\n", k, v))
  end
  io.write(string.format("exhausted: %d\n", out))
end
