-- The URL as given (the HTTP ceiling against /healthz), with the JSON summary of common.lua.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
