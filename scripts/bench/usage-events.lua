-- wrk script: POST /v1/usage/events with a unique idempotency key per request, and count
-- the answers by status so the bench can check accepted events against the stored counter.
-- The request's head is built once per thread and only the body changes (wrk.format per
-- request cost the client more CPU than the server's handling of the request, on the same
-- two cores).
local counter = 0
local thread_id = 0
local threads = {}
local head = nil

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  ok, limited, other = 0, 0, 0
  local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
  head = "POST /v1/usage/events HTTP/1.1\r\nHost: " .. host ..
    "\r\nContent-Type: application/json\r\nAuthorization: Bearer " .. os.getenv("API_KEY") ..
    "\r\nContent-Length: "
end

function request()
  counter = counter + 1
  local body = '{"metric":"api_calls","quantity":1,"idempotency_key":"t' .. thread_id .. "-" .. counter .. '"}'
  return head .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 402 then limited = limited + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, l, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); l = l + t:get("limited"); o = o + t:get("other")
  end
  io.write(string.format("accepted=%d limited=%d other=%d\n", a, l, o))
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
