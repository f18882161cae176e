-- wrk script: OAuth 2.0 client_credentials token requests with client_secret_basic.
-- Credentials come from the environment:
--   BENCH_CLIENT_ID, BENCH_CLIENT_SECRET   (required)
--   BENCH_SCOPE                            (optional: adds scope=... to the body)
--   BENCH_BODY                             (optional: the whole form body instead)
-- done() prints "non200: N" (summed over all threads) plus a per-status breakdown.

local function base64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1) .. alphabet:sub(c2 + 1, c2 + 1)
      .. (b and alphabet:sub(c3 + 1, c3 + 1) or "=")
      .. (c and alphabet:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local client_id = os.getenv("BENCH_CLIENT_ID")
local client_secret = os.getenv("BENCH_CLIENT_SECRET")
if not client_id or not client_secret or client_id == "" or client_secret == "" then
  io.stderr:write("BENCH_CLIENT_ID and BENCH_CLIENT_SECRET must be set\n")
  os.exit(2)
end

local body = "grant_type=client_credentials"
local scope = os.getenv("BENCH_SCOPE")
if scope and scope ~= "" then
  body = body .. "&scope=" .. (scope:gsub(" ", "%%20"))
end
-- Other endpoints that authenticate clients the same way (introspection, revocation) pass
-- their form body whole.
local override = os.getenv("BENCH_BODY")
if override and override ~= "" then
  body = override
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Authorization"] = "Basic " .. base64(client_id .. ":" .. client_secret)
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  statuses = {}
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non200") or 0)
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
end
