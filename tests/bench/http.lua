-- wrk script of tests/bench/http.sh: one fixed request, from the environment.
--   BENCH_METHOD  GET (default) or POST
--   BENCH_TOKEN   if set: Authorization: Bearer <token>
--   BENCH_HOST    if set: the Host header (the tenant of a login is its first label)
--   BENCH_BODY    if set: the body, sent as application/json
--   BENCH_BODIES  if set: a file of bodies, one per line; each request sends the next one
--                 (with BENCH_THREADS=n, wrk's -t, thread k sends lines k+1, k+1+n, ...
--                 only, so no two threads send the same line), as application/json
-- done() prints wrk's summary as one WRK line, the same fields as the nginx anchor's wrk.lua
-- (../shared/anchors/http/wrk.lua), so http.sh parses both the same way.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local host = os.getenv("BENCH_HOST")
if host and host ~= "" then
  wrk.headers["Host"] = host
end
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local bodies_file = os.getenv("BENCH_BODIES")
if bodies_file and bodies_file ~= "" then
  local bodies = {}
  for line in io.lines(bodies_file) do
    bodies[#bodies + 1] = line
  end
  wrk.headers["Content-Type"] = "application/json"
  local threads = 0
  function setup(thread)
    thread:set("thread_index", threads)
    threads = threads + 1
  end
  local stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  local next_body = 0
  function init(args)
    next_body = (thread_index or 0) % stride -- set by setup() in this thread's Lua state
  end
  function request()
    local line = next_body % #bodies + 1
    next_body = next_body + stride
    return wrk.format(nil, nil, nil, bodies[line])
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%.0f duration_us=%.0f bytes_read=%.0f p50_us=%.0f p99_us=%.0f " ..
    "errors_connect=%.0f errors_read=%.0f errors_write=%.0f errors_status=%.0f errors_timeout=%.0f\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50.0), latency:percentile(99.0),
    e.connect, e.read, e.write, e.status, e.timeout))
end
