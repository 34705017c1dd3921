-- wrk script for bench/run: POSTs the request bodies of BENCH_BODIES (one per line, each
-- thread starting at its own place and going round), with BENCH_TOKEN as bearer, and
-- checks every response: HTTP 200, BENCH_EXPECT in the body and no GraphQL "errors".
-- Prints BENCH_* lines for the driver.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  bodies = {}
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    bodies[#bodies + 1] = line
  end
  -- BENCH_START: where in the bodies this run begins (runs that must not replay the same
  -- bodies, as bench/run's scale mode, start at different places).
  position = (thread_number * 7919 + tonumber(os.getenv("BENCH_START") or "0")) % #bodies
  expect = os.getenv("BENCH_EXPECT")
  headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  position = position % #bodies + 1
  return wrk.format("POST", "/graphql", headers, bodies[position])
end

function response(status, _, body)
  if status ~= 200 or not body:find(expect, 1, true) or body:find('"errors"', 1, true) then
    bad = bad + 1
    if bad == 1 then
      io.stderr:write("unexpected response: " .. status .. " " .. body:sub(1, 400) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format("BENCH_REQUESTS %d\nBENCH_BAD %d\nBENCH_SOCKET_ERRORS %d\n",
    summary.requests, failed, e.connect + e.read + e.write + e.status + e.timeout))
end
