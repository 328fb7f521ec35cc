-- GET prefix .. token .. suffix for tokens read from a file. args: file prefix suffix
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local tokens = {}

function init(args)
  for line in io.lines(args[1]) do table.insert(tokens, line) end
  prefix, suffix = args[2], args[3] or ""
  math.randomseed(tid * 104729 + 3)
end

function request()
  return wrk.format("GET", prefix .. tokens[math.random(1, #tokens)] .. suffix)
end
