-- wrk script: POST a distinct newRevision per request (distinct roids, so none is a duplicate).
-- The BIMserver the notifications name: API_URL in the environment (the benchmark's emulator).
local api_url = os.getenv("API_URL") or "http://127.0.0.1:8080"
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local roid = thread_id * 100000000 + counter
  local body = string.format(
    '{"request":{"interface":"RemoteServiceInterface","method":"newRevision","parameters":' ..
    '{"poid":131073,"roid":%d,"soid":720899,"serviceIdentifier":"ifc-summary",' ..
    '"profileIdentifier":"default","userToken":"u","token":"d4f80a55",' ..
    '"apiUrl":"%s"}}}', roid, api_url)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) then
    io.stderr:write("unexpected answer: " .. status .. " " .. body .. "\n")
  end
end
