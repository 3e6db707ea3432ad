-- wrk script: POST /v1/entitlements/check with one feature and one metric per call (no
-- consume), counting answers by status. The request is built once per thread.
local threads = {}
local req = nil

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, other = 0, 0
  local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
  local body = '{"checks":[{"feature":"priority_support"},{"metric":"api_calls","quantity":1}]}'
  req = "POST /v1/entitlements/check HTTP/1.1\r\nHost: " .. host ..
    "\r\nContent-Type: application/json\r\nAuthorization: Bearer " .. os.getenv("API_KEY") ..
    "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

function request()
  return req
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); o = o + t:get("other")
  end
  io.write(string.format("ok=%d other=%d\n", a, o))
  io.write(string.format("p50_ms=%.3f p99_ms=%.3f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
