-- Shared by the wrk scripts of scripts/bench: HTTP Basic encoding, and the per-thread
-- bookkeeping of answers (non-200 by status, values that ran out) that done() sums up.
-- Load it with: local common = dofile(os.getenv("BENCH_ROOT") .. "/scripts/bench/common.lua")

local common = {}

function common.base64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local function at(k) return alphabet:sub(k + 1, k + 1) end
    out[#out + 1] = at(math.floor(n / 262144) % 64) .. at(math.floor(n / 4096) % 64)
      .. (b and at(math.floor(n / 64) % 64) or "=")
      .. (c and at(n % 64) or "=")
  end
  return table.concat(out)
end

-- The `Authorization: Basic` value for a client.
function common.basic(id, secret)
  return "Basic " .. common.base64(id .. ":" .. secret)
end

-- Values one per line from a file; thread `index` of `nthreads` gets the index-th contiguous
-- share.
function common.share(path, index, nthreads)
  local all = {}
  for line in io.lines(path) do
    if #line > 0 then all[#all + 1] = line end
  end
  local size = math.floor(#all / nthreads)
  local mine = {}
  for i = index * size + 1, (index + 1) * size do
    mine[#mine + 1] = all[i]
  end
  return mine
end

local threads = {}
local next_index = 0

-- wrk's setup(): numbers the threads (`index` in each) and remembers them for done().
function common.setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

-- Call from init(): the counters done() reads.
function common.init()
  non200 = 0
  statuses = {}
  exhausted = 0
end

-- Counts an answer other than `expected` (default 200); true when it was the expected one.
function common.count(status, expected)
  if status ~= (expected or 200) then
    non200 = non200 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    return false
  end
  return true
end

-- wrk's done(): "non200: N" (what bench_wrk_row reads), a per-status breakdown, "exhausted: N".
function common.done()
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

return common
