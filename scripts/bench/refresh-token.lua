-- wrk script: the refresh token grant (RFC 6749 §6) with client_secret_basic. Refresh tokens
-- rotate on every use, so each thread keeps a queue: a request takes the oldest token, and its
-- answer puts the new one back. The queue starts with this thread's share of BENCH_TOKENS (one
-- per line, at least as many per thread as it has connections, so no connection waits).
-- Environment: BENCH_TOKENS, BENCH_WRK_THREADS, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET.

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

local path = os.getenv("BENCH_TOKENS")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "")
local id, secret = os.getenv("BENCH_CLIENT_ID"), os.getenv("BENCH_CLIENT_SECRET")
if not path or not nthreads or not id or not secret then
  io.stderr:write("BENCH_TOKENS, BENCH_WRK_THREADS, BENCH_CLIENT_ID and BENCH_CLIENT_SECRET must be set\n")
  os.exit(2)
end

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
  starved = 0
  local all = {}
  for line in io.lines(path) do
    if #line > 0 then all[#all + 1] = line end
  end
  local share = math.floor(#all / nthreads)
  queue, head, tail = {}, 1, 0
  for i = index * share + 1, (index + 1) * share do
    tail = tail + 1
    queue[tail] = all[i]
  end
end

function request()
  local token
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  else
    starved = starved + 1
    token = "starved"
  end
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    return
  end
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then
    tail = tail + 1
    queue[tail] = token
  end
end

function done(summary, latency, requests)
  local total, out = 0, 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non200") or 0)
    out = out + (thread:get("starved") or 0)
    local s = thread:get("statuses")
    if type(s) == "table" then
      for k, v in pairs(s) do by_status[k] = (by_status[k] or 0) + v end
    end
  end
  io.write(string.format("non200: %d\n", total))
  for k, v in pairs(by_status) do io.write(string.format("non200 status %s: %d\n", k, v)) end
  io.write(string.format("exhausted: %d\n", out))
end
