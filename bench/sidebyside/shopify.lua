-- wrk script of bench/nodered.py: Shopify-signed orders, each with a webhook id of its own.
--
--   wrk -t1 -c16 -d10s --latency -s shopify.lua URL -- BODY_FILE SIGNATURE ID_PREFIX [LIMIT]
--
-- The body is the same for every request, so its X-Shopify-Hmac-Sha256 (computed once by the
-- bench) is too; X-Shopify-Webhook-Id is ID_PREFIX .. thread .. "-" .. n, new for every request,
-- so every request is a new delivery. With LIMIT > 0 exactly LIMIT orders are sent: `delay`
-- holds back every connection once LIMIT sends are granted, and when the last answer is in the
-- script says so on stdout. `done` prints one line "WRK_RESULT {json}" for the bench to read.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local body, signature, prefix, limit
local granted, sent, answered = 0, 0, 0
statuses = {}

function init(args)
  local file = assert(io.open(args[1], "rb"))
  body = file:read("*a")
  file:close()
  signature = args[2]
  prefix = args[3] .. tostring(tid) .. "-"
  limit = tonumber(args[4] or "0")
  if limit <= 0 then
    delay = nil  -- no limit: no per-request timer either (wrk checks for `delay` after init)
  end
end

function delay()
  if granted >= limit then
    return 3600000  -- held back until the thread stops
  end
  granted = granted + 1
  return 0
end

function request()
  sent = sent + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = "orders/create",
    ["X-Shopify-Hmac-Sha256"] = signature,
    ["X-Shopify-Webhook-Id"] = prefix .. sent,
  }, body)
end

function response(status, headers, response_body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  answered = answered + 1
  if limit > 0 and answered == limit then
    -- wrk's main thread sleeps for the whole -d whatever its threads do; the bench sends it
    -- SIGINT (wrk's "stop now") when it reads this line
    io.write("WRK_LIMIT_REACHED\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local codes = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses") or {}
    for code, n in pairs(seen) do
      codes[code] = (codes[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(codes) do
    table.insert(parts, string.format('"%s": %d', code, n))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"duration_us": %d, "requests": %d, "statuses": {%s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.duration, summary.requests, table.concat(parts, ", "),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
