-- POST /transfers/batch with valid, varied batches of BATCH_SIZE transfers (default 100) over 10,000 accounts.
-- Batches are formatted once per thread. Prints one JSON line like common.lua's, plus the batch size and
-- transfers per second (requests x batch size; a batch answered 200 may still hold failed items, which the
-- non_2xx count does not see, so run it against a healthy service and check the service's log).
--   BATCH_SIZE=100 wrk -t2 -c16 -d15s --latency -s bench/batch.lua http://127.0.0.1:8080/transfers/batch
local size = tonumber(os.getenv("BATCH_SIZE") or "100")
local requests = {}
local count = 50
local index = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local headers = { ["Content-Type"] = "application/json" }
  for i = 1, count do
    local items = {}
    for j = 1, size do
      local sender = math.random(0, 9999)
      local receiver = (sender + math.random(1, 9999)) % 10000
      local amount = string.format("%d.%02d", math.random(0, 99999), math.random(1, 99))
      items[j] = string.format('{"sender_id":"account-%d","receiver_id":"account-%d","amount":%s}', sender, receiver, amount)
    end
    requests[i] = wrk.format("POST", "/transfers/batch", headers, '{"transfers":[' .. table.concat(items, ",") .. ']}')
  end
end

function request()
  index = index % count + 1
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"batch_size":%d,"requests":%d,"duration_s":%.3f,"requests_per_second":%.1f,"transfers_per_second":%.1f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"non_2xx":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_timeout":%d}\n',
    size, summary.requests, seconds, summary.requests / seconds, summary.requests * size / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
