-- wrk script: the authorization code grant (RFC 6749 §4.1.3) with client_secret_basic and a
-- PKCE verifier. Each request exchanges its own code (codes are single-use), read from
-- BENCH_CODES (one per line, minted ahead of time by authorization-code-mint.lua); thread i of
-- BENCH_WRK_THREADS takes the i-th contiguous share. A thread that runs out stops sending real
-- codes (it never reuses one) and counts "exhausted".
-- Environment: BENCH_CODES, BENCH_WRK_THREADS, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET,
-- BENCH_REDIRECT_URI, BENCH_CODE_VERIFIER.

local function base64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    out[#out + 1] = alphabet:sub(math.floor(n / 262144) % 64 + 1, math.floor(n / 262144) % 64 + 1)
      .. alphabet:sub(math.floor(n / 4096) % 64 + 1, math.floor(n / 4096) % 64 + 1)
      .. (b and alphabet:sub(math.floor(n / 64) % 64 + 1, math.floor(n / 64) % 64 + 1) or "=")
      .. (c and alphabet:sub(n % 64 + 1, n % 64 + 1) or "=")
  end
  return table.concat(out)
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(ch) return string.format("%%%02X", ch:byte()) end))
end

local path = os.getenv("BENCH_CODES")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "")
local id, secret = os.getenv("BENCH_CLIENT_ID"), os.getenv("BENCH_CLIENT_SECRET")
local redirect, verifier = os.getenv("BENCH_REDIRECT_URI"), os.getenv("BENCH_CODE_VERIFIER")
if not path or not nthreads or not id or not secret or not redirect or not verifier then
  io.stderr:write("BENCH_CODES, BENCH_WRK_THREADS, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, BENCH_REDIRECT_URI and BENCH_CODE_VERIFIER must be set\n")
  os.exit(2)
end

local suffix = "&redirect_uri=" .. urlencode(redirect) .. "&code_verifier=" .. urlencode(verifier)
local headers = {
  ["Authorization"] = "Basic " .. base64(id .. ":" .. secret),
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}

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
  local all = {}
  for line in io.lines(path) do
    if #line > 0 then all[#all + 1] = line end
  end
  local share = math.floor(#all / nthreads)
  codes = {}
  for i = index * share + 1, (index + 1) * share do
    codes[#codes + 1] = all[i]
  end
  used = 0
end

function request()
  used = used + 1
  local code = codes[used]
  if not code then
    exhausted = exhausted + 1
    code = "exhausted"
  end
  return wrk.format("POST", nil, headers, "grant_type=authorization_code&code=" .. code .. suffix)
end

function response(status, headers, body)
  if status ~= 200 then
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
      for k, v in pairs(s) do by_status[k] = (by_status[k] or 0) + v end
    end
  end
  io.write(string.format("non200: %d\n", total))
  for k, v in pairs(by_status) do io.write(string.format("non200 status %s: %d\n", k, v)) end
  io.write(string.format("exhausted: %d\n", out))
end
