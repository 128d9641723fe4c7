-- POST /transfers with valid, varied bodies: 10,000 accounts, amounts with 0, 1 or 2 decimals.
-- Requests are formatted once per thread, so wrk's Lua cost per request is one table lookup.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests = {}
local count = 2000
local index = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local headers = { ["Content-Type"] = "application/json" }
  for i = 1, count do
    local sender = math.random(0, 9999)
    local receiver = (sender + math.random(1, 9999)) % 10000
    local amount
    local kind = i % 3
    if kind == 0 then
      amount = tostring(math.random(1, 99999))
    elseif kind == 1 then
      amount = string.format("%d.%d", math.random(0, 99999), math.random(1, 9))
    else
      amount = string.format("%d.%02d", math.random(0, 99999), math.random(1, 99))
    end
    local body = string.format('{"sender_id":"account-%d","receiver_id":"account-%d","amount":%s}', sender, receiver, amount)
    requests[i] = wrk.format("POST", "/transfers", headers, body)
  end
end

function request()
  index = index % count + 1
  return requests[index]
end
