-- GET /transfers/<id> over ids that exist, read from the file named by BENCH_IDS_FILE (one id per line).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests = {}
local index = 0

function init(args)
  for id in io.lines(os.getenv("BENCH_IDS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", "/transfers/" .. id)
  end
  if #requests == 0 then error("no ids in " .. os.getenv("BENCH_IDS_FILE")) end
  index = math.random(0, #requests - 1)
end

function request()
  index = index % #requests + 1
  return requests[index]
end
