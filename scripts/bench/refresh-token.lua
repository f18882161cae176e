-- wrk script: the refresh token grant (RFC 6749 §6) with client_secret_basic. Refresh tokens
-- rotate on every use, so each thread keeps a queue: a request takes the oldest token, and its
-- answer puts the new one back. The queue starts with this thread's share of BENCH_TOKENS (one
-- per line, more per thread than it has connections, so no connection waits).
-- Environment: BENCH_ROOT, BENCH_TOKENS, BENCH_WRK_THREADS, BENCH_CLIENT_ID,
-- BENCH_CLIENT_SECRET.

local common = dofile(os.getenv("BENCH_ROOT") .. "/scripts/bench/common.lua")

local path = os.getenv("BENCH_TOKENS")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "")
local id, secret = os.getenv("BENCH_CLIENT_ID"), os.getenv("BENCH_CLIENT_SECRET")
if not path or not nthreads or not id or not secret then
  io.stderr:write("BENCH_TOKENS, BENCH_WRK_THREADS, BENCH_CLIENT_ID and BENCH_CLIENT_SECRET must be set\n")
  os.exit(2)
end

local headers = {
  ["Authorization"] = common.basic(id, secret),
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}

setup = common.setup
done = common.done

function init(args)
  common.init()
  queue, head, tail = common.share(path, index, nthreads), 1, 0
  tail = #queue
end

function request()
  local token
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  else
    exhausted = exhausted + 1
    token = "starved"
  end
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  if common.count(status) then
    local token = body:match('"refresh_token":"([^"]+)"')
    if token then
      tail = tail + 1
      queue[tail] = token
    end
  end
end
