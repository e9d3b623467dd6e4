-- wrk_validate.lua: POST /otp/validate, each request with a fresh
-- (otpId, code) pair from the file BENCH_PAIRS ("otpId code" per line), so
-- that each one validates successfully.  Thread t of BENCH_THREADS takes
-- lines t+1, t+1+BENCH_THREADS, ...  in order; "used" tells bench/run how
-- many it consumed.  A thread that runs out starts over ("wrapped"): those
-- requests fail and bench/run reports it.
-- BENCH_MODE=fail sends a wrong code (last digit changed) instead: a failed
-- validate, which leaves the code valid.
-- Environment: BENCH_DIR, BENCH_API_KEY, BENCH_PAIRS, BENCH_THREADS,
-- BENCH_MODE.
dofile(os.getenv("BENCH_DIR") .. "/wrk_report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY")

setup = bench_setup

local ids, codes = {}, {}
local n, i = 0, 0
used = 0

local function wrong(code)
	local last = code:sub(-1)
	local d = tonumber(last)
	if d then
		return code:sub(1, -2) .. tostring((d + 1) % 10)
	end
	if last == last:upper() then
		return code:sub(1, -2) .. last:lower()
	end
	return code:sub(1, -2) .. last:upper()
end

function init(args)
	local nthreads = tonumber(os.getenv("BENCH_THREADS"))
	local fail = os.getenv("BENCH_MODE") == "fail"
	local line_no = 0
	for line in io.lines(os.getenv("BENCH_PAIRS")) do
		if line_no % nthreads == tid then
			local id, code = line:match("^(%S+) (%S+)$")
			if id then
				n = n + 1
				ids[n] = id
				codes[n] = fail and wrong(code) or code
			end
		end
		line_no = line_no + 1
	end
end

function request()
	i = i + 1
	if i > n then
		i = 1
		wrapped = true
	end
	used = used + 1
	return wrk.format(nil, "/otp/validate", nil,
	    '{"otpId":"' .. ids[i] .. '","otp":"' .. codes[i] .. '"}')
end
