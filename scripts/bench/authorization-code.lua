-- wrk script: the authorization code grant (RFC 6749 §4.1.3) with client_secret_basic and a
-- PKCE verifier. Each request exchanges its own code (codes are single-use), read from
-- BENCH_CODES (one per line, minted ahead of time by authorization-code-mint.lua); thread i of
-- BENCH_WRK_THREADS takes the i-th share. A thread that runs out stops sending real codes (it
-- never reuses one) and counts "exhausted".
-- Environment: BENCH_ROOT, BENCH_CODES, BENCH_WRK_THREADS, BENCH_CLIENT_ID,
-- BENCH_CLIENT_SECRET, BENCH_REDIRECT_URI, BENCH_CODE_VERIFIER.

local common = dofile(os.getenv("BENCH_ROOT") .. "/scripts/bench/common.lua")

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
  ["Authorization"] = common.basic(id, secret),
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}

setup = common.setup
done = common.done

function init(args)
  common.init()
  codes = common.share(path, index, nthreads)
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
  common.count(status)
end
