-- wrk_generate.lua: POST /otp/generate with a real request body, the same
-- for every request (the code, the otpId and the rows differ each time).
-- Environment: BENCH_DIR (this directory), BENCH_API_KEY.
dofile(os.getenv("BENCH_DIR") .. "/wrk_report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY")
wrk.body = '{"channel":"email","provider":"generic",' ..
    '"destination":"bench@example.com","type":"numeric","length":6,' ..
    '"expiresInSeconds":3600,"templateId":"otp-default-a1562ab2"}'

setup = bench_setup
