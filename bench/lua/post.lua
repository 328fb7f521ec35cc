-- POST a fixed JSON body to one path. args: token path body
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local req

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  if args[1] ~= "" then headers["Authorization"] = "Bearer " .. args[1] end
  req = wrk.format("POST", args[2], headers, args[3])
end

function request()
  return req
end
