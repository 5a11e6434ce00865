-- wrk script: the mixed order lifecycle over HTTP, step 4 of bench/run.
--   wrk -t2 -c32 -d15s -s lifecycle.lua http://host:port -- [run=<tag>] [token=<bearer token>] [out=<file>]
-- Every order goes place -> initiate payment -> mark paid -> ship (in transit) -> update (in
-- transit, new location) -> update (out for delivery) -> deliver: 7 commands. One order in ten
-- is cancelled after payment initiation instead (3 commands). orderd runs with --payments 0, so
-- the payment commands are the benchmark's own.
-- A command's answer names the order and its new version, which is all the script needs to
-- choose the order's next command: answers feed a per-thread queue of orders ready for their
-- next step, and a connection places a new order only when no order is waiting. Each request
-- has a unique Idempotency-Key. done() writes a JSON summary (out=<file>, else stdout).
local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local run = "l"
local auth = nil
out = nil -- global: done() runs in the main Lua state and reads it from a thread
local seq = 0
local ready, head, tail = {}, 1, 0   -- FIFO of {id, version}
local cancel_ids = {}
placed, delivered, cancelled, lost = 0, 0, 0, 0

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^(%w+)=(.*)$")
    if k == "run" then run = v elseif k == "out" then out = v
    elseif k == "token" then auth = "Bearer " .. v end
  end
  math.randomseed(tid * 7919)
end

local place_fmt = '{"customer_id":"cust-%d","vendor_id":"vendor-%d","payment_method":"card",' ..
  '"items":[{"product_id":"sku-%d","title":"Paperback book","quantity":2,' ..
  '"unit_price":{"currency_code":"EUR","amount_minor":1250}},' ..
  '{"product_id":"sku-77","title":"Bookmark","quantity":1,"unit_price":{"currency_code":"EUR","amount_minor":199}}],' ..
  '"shipping_address":{"name":"Ada Lovelace","line1":"1 Main St","city":"Paris","postal_code":"75001","country_code":"FR"}}'
local ship_fmt = '{"status":"%s","carrier":"DHL","tracking_number":"JD%09d","location":"%s"}'

local function headers()
  return { ["Content-Type"] = "application/json", ["Authorization"] = auth, ["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, seq) }
end

function request()
  seq = seq + 1
  if head > tail then
    return wrk.format("POST", "/v1/orders", headers(),
      string.format(place_fmt, (tid * 1000003 + seq) % 50000, seq % 97, seq % 1000))
  end
  local o = ready[head]
  ready[head] = nil
  head = head + 1
  local id, v = o[1], o[2]
  local base = "/v1/orders/" .. id
  if v == 1 then
    return wrk.format("POST", base .. "/payment:initiate", headers(), "{}")
  elseif v == 2 and math.random() < 0.1 then
    cancel_ids[id] = true
    return wrk.format("POST", base .. "/cancel", headers(), '{"reason":"changed my mind"}')
  elseif v == 2 then
    return wrk.format("POST", base .. "/payment:paid", headers(), "{}")
  end
  local status, where = "SHIPPING_STATUS_IN_TRANSIT", "Leipzig"
  if v == 4 then where = "Berlin"
  elseif v == 5 then status, where = "SHIPPING_STATUS_OUT_FOR_DELIVERY", "Paris"
  elseif v == 6 then status, where = "SHIPPING_STATUS_DELIVERED", "Paris" end
  return wrk.format("PUT", base .. "/shipping-status", headers(), string.format(ship_fmt, status, seq, where))
end

function response(status, hdrs, body)
  if status < 200 or status > 299 then
    lost = lost + 1
    return
  end
  local id = body:match('"order_id":"([%x%-]+)"')
  local v = tonumber(body:match('"version":"?(%d+)'))
  if not id or not v then
    lost = lost + 1
    return
  end
  if v == 1 then placed = placed + 1 end
  if v == 3 and cancel_ids[id] then
    cancel_ids[id] = nil
    cancelled = cancelled + 1
    return
  end
  if v == 7 then
    delivered = delivered + 1
    return
  end
  tail = tail + 1
  ready[tail] = { id, v }
end

function done(summary, latency, requests)
  local p, d, c, l = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    p = p + t:get("placed"); d = d + t:get("delivered"); c = c + t:get("cancelled"); l = l + t:get("lost")
  end
  local e = summary.errors
  local s = string.format('{"requests":%d,"duration_s":%.3f,"non2xx":%d,"socket_errors":%d,"lost":%d,' ..
    '"placed":%d,"delivered":%d,"cancelled":%d,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout, l,
    p, d, c, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000)
  local path = threads[1] and threads[1]:get("out")
  if path then
    local f = io.open(path, "w"); f:write(s); f:close()
  else
    io.write(s)
  end
end
