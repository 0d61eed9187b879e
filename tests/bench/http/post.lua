-- SPDX-License-Identifier: MIT
--
-- post.lua - the wrk script of bench_http.sh.  From the environment:
--   BODY_FILE  POST this file's bytes as application/json (unset: GET)
--   TOKEN      sent as "Authorization: Bearer TOKEN" (unset: no header)
-- Every side gets the same request but for the URL.  At the end one line
-- on stdout, for the script to read:
--   wrk-result REQUESTS SECONDS P50_US P99_US MEAN_US MAX_US NON2XX
--              CONNECT READ WRITE TIMEOUT
-- (NON2XX: answers whose status is not 2xx or 3xx; then socket errors).

local body_file = os.getenv("BODY_FILE")
local token = os.getenv("TOKEN")

if body_file and body_file ~= "" then
	local fp = assert(io.open(body_file, "rb"))
	wrk.method = "POST"
	wrk.body = fp:read("*a")
	fp:close()
	wrk.headers["Content-Type"] = "application/json"
end
if token and token ~= "" then
	wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("wrk-result %d %.6f %d %d %.1f %d %d %d %d %d %d\n",
		summary.requests, summary.duration / 1e6,
		latency:percentile(50), latency:percentile(99), latency.mean,
		latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
