-- GET prefix .. token .. suffix, each token once: thread n walks its own block of the file from
-- `start`, so no link is viewed twice in a run. args: file prefix suffix start block
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local tokens = {}
local at

function init(args)
  for line in io.lines(args[1]) do table.insert(tokens, line) end
  prefix, suffix = args[2], args[3] or ""
  at = tonumber(args[4]) + (tid - 1) * tonumber(args[5])
end

function request()
  at = at + 1
  return wrk.format("GET", prefix .. tokens[(at - 1) % #tokens + 1] .. suffix)
end
