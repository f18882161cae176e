-- wrk script for scripts/bench/tenant-flood: GET /oauth2/authorize as one browser. With
-- BENCH_COOKIE (a logged-in, consented browser) every answer is a redirect with a code (a
-- silent login); without it every request is a fresh browser, kept as a pending sign-in and
-- sent to the login page. A redirect (3xx) counts as served; done() prints "non200: N" with a
-- per-status breakdown ("non200 status 429: N").

local common = dofile(os.getenv("BENCH_ROOT") .. "/scripts/bench/common.lua")

local cookie = os.getenv("BENCH_COOKIE")
wrk.method = "GET"
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end

setup = common.setup
done = common.done

function init(args)
  common.init()
end

function response(status, headers, body)
  if status >= 300 and status < 400 then
    status = 200
  end
  common.count(status, 200)
end
