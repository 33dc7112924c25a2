-- wrk script for latchkey-bench.
--
--   wrk -t2 -c32 -d2s -s bench.lua http://127.0.0.1:PORT -- FILE MODE THREADS
--
-- FILE has one request a line: a path (with its query), then any headers,
-- each after a tab as "Name: value". Each thread takes every THREADS-th line
-- (thread i the lines i, i+THREADS, ...), so threads never share a line
-- (a file with fewer lines than threads is shared in MODE cycle), and
-- pre-builds its requests (wrk.format on the hot path would cost the
-- client more than the server). MODE "cycle" goes round its lines for as
-- long as wrk runs; MODE "once" sends each line at most once (one-shot
-- tickets and links) and stops the thread when its lines run out.
--
-- Every response's status is counted per thread; done() prints one line,
-- "LATCHKEY-BENCH <json>", with wrk's summary, the latency percentiles and
-- the status counts, which the harness parses.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, mode, nthreads = args[1], args[2], tonumber(args[3])
  once = (mode == "once")
  statuses = {}
  exhausted = 0
  reqs = {}
  local all = {}
  local f = assert(io.open(file, "r"))
  for line in f:lines() do
    if line ~= "" then
      all[#all + 1] = line
    end
  end
  local mine = {}
  for i, line in ipairs(all) do
    if (i - 1) % nthreads == tid then
      mine[#mine + 1] = line
    end
  end
  -- Fewer lines than threads (one cookie): cycling threads share them.
  if #mine == 0 and not once then
    mine = all
  end
  for _, line in ipairs(mine) do
    local path = line:match("^[^\t]*")
    local headers = {}
    for name, value in line:gmatch("\t([^:\t]+): ([^\t]*)") do
      headers[name] = value
    end
    reqs[#reqs + 1] = wrk.format("GET", path, headers)
  end
  f:close()
  n = #reqs
  idx = 0
  assert(n > 0, "no requests for thread " .. tid .. " in " .. file)
  -- Sent once the lines have run out, while the thread stops: its
  -- response, if any, is not counted.
  spare = wrk.format("GET", "/.latchkey-bench-exhausted", {})
end

function request()
  if idx >= n then
    if once then
      exhausted = exhausted + 1
      wrk.thread:stop()
      return spare
    end
    idx = 0
  end
  idx = idx + 1
  return reqs[idx]
end

function response(status, headers, body)
  if exhausted > 0 then
    return
  end
  statuses[status] = (statuses[status] or 0) + 1
end

local function json_counts(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format('"%d":%d', k, v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local total = {}
  local exh = 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do
      total[k] = (total[k] or 0) + v
    end
    if t:get("exhausted") > 0 then
      exh = exh + 1
    end
  end
  local e = summary.errors
  io.write(string.format(
    'LATCHKEY-BENCH {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
    '"statuses":%s,"exhausted_threads":%d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    json_counts(total), exh))
end
