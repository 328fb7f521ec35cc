-- PUT /api/express/tasks/upsert/{id}: half seeded ids, half new; the body of bench/bodies.py.
-- args: token prefix tasks crew(comma-separated)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local counter = 0

function init(args)
  headers = {["Authorization"] = "Bearer " .. args[1], ["Content-Type"] = "application/json"}
  prefix, tasks, crew = args[2], tonumber(args[3]), {}
  for c in string.gmatch(args[4], "[^,]+") do table.insert(crew, c) end
  math.randomseed(tid * 7919 + 17)
end

function request()
  counter = counter + 1
  local n = tid * 10000000 + counter
  local id
  if counter % 2 == 0 then
    id = "ext-" .. math.random(0, tasks - 1)
  else
    id = "new-" .. prefix .. "-" .. n
  end
  local c1, c2 = crew[(n % #crew) + 1], crew[((n + 1) % #crew) + 1]
  local body = '{"title":"Bench upsert ' .. n .. '","details":"Replace the filter and check the pressure.",'
    .. '"start_datetime":"2026-03-02T09:00:00Z","end_datetime":"2026-03-02T11:00:00Z",'
    .. '"customer_first_name":"Ana","customer_last_name":"Chen","customer_email":"cust' .. n .. '@bench.test",'
    .. '"customer_mobile_number":"+12125550100","customer_address_line_1":"12 Main St",'
    .. '"customer_city":"Springfield","customer_zipcode":"62701","additional_addresses":['
    .. '{"address_line_1":"1 Side St","city":"Springfield","zipcode":"62702"},'
    .. '{"address_line_1":"2 Side St","city":"Springfield","zipcode":"62702"}],'
    .. '"entity_ids":[' .. c1 .. ',' .. c2 .. ']}'
  return wrk.format("PUT", "/api/express/tasks/upsert/" .. id, headers, body)
end
