-- wrk_report.lua: shared by the wrk scripts (loaded with dofile): done()
-- prints one machine-readable line that bench/run parses:
--   BENCH_JSON {"requests": ..., "p50_us": ..., "used": [...], ...}
-- "used" holds, per wrk thread, how many request() calls it made (scripts
-- that hand out one-use validate pairs set the thread global "used").

bench_threads = {}

function bench_setup(thread)
	thread:set("tid", #bench_threads)
	table.insert(bench_threads, thread)
end

function done(summary, latency, requests)
	local e = summary.errors
	local used, wrapped = {}, 0
	for _, t in ipairs(bench_threads) do
		table.insert(used, tostring(t:get("used") or 0))
		if t:get("wrapped") then
			wrapped = wrapped + 1
		end
	end
	io.write(string.format('BENCH_JSON {"requests": %d, ' ..
	    '"duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
	    '"read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
	    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
	    '"max_us": %d, "used": [%s], "wrapped_threads": %d}\n',
	    summary.requests, summary.duration, e.status, e.connect, e.read,
	    e.write, e.timeout, latency:percentile(50),
	    latency:percentile(90), latency:percentile(99), latency.mean,
	    latency.max, table.concat(used, ", "), wrapped))
end
