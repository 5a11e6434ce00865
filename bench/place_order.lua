-- wrk script: PlaceOrder over HTTP, every request a different order.
--   wrk -t2 -c32 -d15s -s place_order.lua http://host:port -- [run=<tag>] [rate=<orders/s> threads=<wrk -t>]
--     [token=<bearer token>] [out=<file>]
-- Each request carries a unique Idempotency-Key (so the append records and checks a command id,
-- as a retrying client's would) and a customer id that varies, with a realistic body: two line
-- items and a full shipping address. With rate=R the threads pace their sends on a shared
-- schedule (R/threads each, LuaJIT's clock_gettime), so the service sees an open-loop arrival
-- rate rather than "as fast as it answers". done() writes a JSON summary to out (or stdout).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local run, rate, nthreads = "r", 0, 2
out = nil -- global: done() runs in the main Lua state and reads it from a thread
local interval, next_at, seq = 0, 0, 0
local auth = nil

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^(%w+)=(.*)$")
    if k == "run" then run = v elseif k == "rate" then rate = tonumber(v)
    elseif k == "threads" then nthreads = tonumber(v) elseif k == "out" then out = v
    elseif k == "token" then auth = "Bearer " .. v end
  end
  -- init runs in every thread's own Lua state: each thread paces an equal share of the rate.
  if rate > 0 then interval = nthreads * 1000.0 / rate end
end

local body_fmt = '{"customer_id":"cust-%d","vendor_id":"vendor-%d","payment_method":"card",' ..
  '"items":[{"product_id":"sku-%d","title":"Paperback book","quantity":2,' ..
  '"unit_price":{"currency_code":"EUR","amount_minor":1250}},' ..
  '{"product_id":"sku-77","title":"Bookmark","quantity":1,"unit_price":{"currency_code":"EUR","amount_minor":199}}],' ..
  '"shipping_address":{"name":"Ada Lovelace","line1":"1 Main St","city":"Paris","postal_code":"75001","country_code":"FR"}}'

function request()
  seq = seq + 1
  local body = string.format(body_fmt, (tid * 1000003 + seq) % 50000, seq % 97, seq % 1000)
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = auth,
                    ["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, seq) }
  return wrk.format("POST", "/v1/orders", headers, body)
end

function delay()
  if interval <= 0 then return 0 end
  local t = now_ms()
  if next_at < t then next_at = t end
  local d = next_at - t
  next_at = next_at + interval
  return d
end

function done(summary, latency, requests)
  local e = summary.errors
  local s = string.format('{"requests":%d,"duration_s":%.3f,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000)
  local path = threads[1] and threads[1]:get("out")
  if path then
    local f = io.open(path, "w"); f:write(s); f:close()
  else
    io.write(s)
  end
end
