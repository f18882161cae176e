-- wrk script: mints authorization codes for scripts/bench/authorization-code. Every request is
-- GET /oauth2/authorize from a browser that has logged in and consented (its session and
-- binding cookies come from BENCH_COOKIE), so the server answers 303 to the redirect URI with
-- a fresh code; each thread appends the codes to BENCH_CODES_DIR/codes.<thread>.
-- done() prints "non200: N" (answers other than 303).

local common = dofile(os.getenv("BENCH_ROOT") .. "/scripts/bench/common.lua")

local dir = os.getenv("BENCH_CODES_DIR")
local cookie = os.getenv("BENCH_COOKIE")
if not dir or not cookie then
  io.stderr:write("BENCH_CODES_DIR and BENCH_COOKIE must be set\n")
  os.exit(2)
end

wrk.method = "GET"
wrk.headers["Cookie"] = cookie

setup = common.setup
done = common.done

function init(args)
  common.init()
  out = io.open(dir .. "/codes." .. index, "a")
  out:setvbuf("line")
end

function response(status, headers, body)
  local location = headers["location"] or headers["Location"]
  local code = location and location:match("[?&]code=([^&]+)")
  if common.count(code and status or 0, 303) then
    out:write(code, "\n")
  end
end
