-- GET one path. args: path
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local req

function init(args)
  req = wrk.format("GET", args[1])
end

function request()
  return req
end
