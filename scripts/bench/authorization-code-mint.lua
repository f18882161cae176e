-- wrk script: mints authorization codes for scripts/bench/authorization-code. Every request is
-- GET /oauth2/authorize from a browser that has logged in and consented (its session and
-- binding cookies come from BENCH_COOKIE), so the server answers 303 to the redirect URI with
-- a fresh code; each thread appends the codes to BENCH_CODES_DIR/codes.<thread>.
-- done() prints "non200: N" (answers other than 303).

local dir = os.getenv("BENCH_CODES_DIR")
local cookie = os.getenv("BENCH_COOKIE")
if not dir or not cookie then
  io.stderr:write("BENCH_CODES_DIR and BENCH_COOKIE must be set\n")
  os.exit(2)
end

wrk.method = "GET"
wrk.headers["Cookie"] = cookie

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  out = io.open(dir .. "/codes." .. index, "a")
  out:setvbuf("line")
end

function response(status, headers, body)
  local location = headers["location"] or headers["Location"]
  local code = location and location:match("[?&]code=([^&]+)")
  if status ~= 303 or not code then
    non200 = non200 + 1
    return
  end
  out:write(code, "\n")
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non200") or 0)
  end
  io.write(string.format("non200: %d\n", total))
end
