#!/usr/bin/python3
"""sender_drain.py: measure otpd-sender on this machine, loopback only.

  latency   generate (POST /otp/generate through nginx) to the webhook
            receiving the code, one code at a time, sender in --follow:
            median and 95th percentile over --codes codes
  drain     jobs per second from a full outbox (--jobs sealed jobs,
            inserted with COPY) to a local webhook, one otpd-sender --once
            at each --parallel value; the time is from the sender's start
            to its exit, and from the first to the last delivery

It starts its own stack with tests/integration/conftest.py (a throwaway
PostgreSQL cluster, otpd, nginx) and removes it at the end.  The webhook is
either the Python receiver of the tests, which checks every signature
(--receiver python), or an nginx location that answers 200 without looking
(--receiver nginx, the default), so that the sender is what is measured.

    /usr/bin/python3 bench/sender_drain.py [--build DIR] [--codes 200]
        [--jobs 5000] [--parallel 1,16] [--receiver nginx|python]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def nginx_receiver(tmp):
    """An nginx answering 200 to POST /hook; returns (url, stop, count)."""
    from pgcluster import free_port
    port = free_port()
    d = os.path.join(tmp, "hook-nginx")
    os.makedirs(os.path.join(d, "tmp"))
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 2;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
	access_log %(d)s/access.log;
	client_body_temp_path %(d)s/tmp/body;
	proxy_temp_path %(d)s/tmp/proxy;
	fastcgi_temp_path %(d)s/tmp/fastcgi;
	uwsgi_temp_path %(d)s/tmp/uwsgi;
	scgi_temp_path %(d)s/tmp/scgi;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:%(p)d;
		location = /hook {
			default_type application/json;
			return 200 '{"ok":true}';
		}
	}
}
""" % {"d": d, "p": port})
    proc = subprocess.Popen(["nginx", "-p", d, "-c", conf, "-e",
                             os.path.join(d, "error.log"), "-g",
                             "daemon off;"], start_new_session=True)
    from conftest import tcp_open, wait_for
    wait_for("the receiver", lambda: tcp_open(port))

    def stop():
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=30)

    def count():
        with open(os.path.join(d, "access.log")) as f:
            return sum(1 for line in f if "POST /hook" in line)
    return "http://127.0.0.1:%d/hook" % port, stop, count


def start_sender(stack, args, **settings):
    from sender_fixtures import SenderProc
    cfg = {"log_level": "warn", "sender_poll_ms": 1000}
    cfg.update(settings)
    return SenderProc(stack, cfg, args)


def measure_latency(stack, n, secret):
    """Median and p95 of generate -> webhook, in milliseconds."""
    from conftest import wait_for
    from fakes.httpfake import WebhookFake
    hook = WebhookFake(secret)
    name = "bench-lat"
    key = stack.db("SELECT otp.create_client('%s')" % name)[0][0]
    stack.db("SELECT otp.add_provider('%s', 'sms', 'hook', 'webhook', "
             "'{\"url\": \"%s\", \"secret\": \"%s\"}') \\g /dev/null"
             % (name, hook.hook_url, secret))
    p = start_sender(stack, ["--follow"])
    time.sleep(1.0)
    lat = []
    try:
        for i in range(n + 5):
            t0 = time.monotonic()
            status, _, body = stack.api("generate", {
                "channel": "sms", "provider": "hook",
                "destination": "+4917012345%02d" % (i % 100),
                "type": "numeric", "length": 6, "expiresInSeconds": 300}, key)
            assert status == 200, body
            oid = body["otpId"]

            def arrived():
                with hook.lock:
                    for r in hook.requests:
                        if oid.encode() in r.body:
                            return r.t
                return None
            t1 = wait_for("delivery", arrived, timeout=30, interval=0.0005)
            if i >= 5:          # the first few warm connections up
                lat.append((t1 - t0) * 1000)
    finally:
        p.stop()
        hook.close()
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.95) - 1], len(lat)


def measure_drain(stack, url, count_fn, jobs, parallel, secret):
    from sender_fixtures import insert_jobs, make_provider, count_by_status
    prov = make_provider(stack, "webhook", "email", {"url": url,
                                                    "secret": secret})
    insert_jobs(stack, prov, ["d%d@example.com" % i for i in range(jobs)],
                notify=False)
    before = count_fn() if count_fn else 0
    t0 = time.monotonic()
    p = start_sender(stack, ["--once", "-p", str(parallel)],
                     sender_batch=max(64, parallel * 2))
    rc = p.wait(timeout=3600)
    elapsed = time.monotonic() - t0
    assert rc == 0, p.log()
    st = count_by_status(stack, prov)
    assert st.get("sent") == jobs, st
    first_last = stack.db(
        "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM "
        "otp.outbox WHERE provider_id = %d" % prov.provider_id)[0][0]
    got = (count_fn() - before) if count_fn else jobs
    assert got == jobs, "receiver saw %d requests for %d jobs" % (got, jobs)
    return jobs / elapsed, jobs / max(float(first_last), 1e-9), elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, ".."))
    ap.add_argument("--codes", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--parallel", default="1,16")
    ap.add_argument("--receiver", choices=("nginx", "python"),
                    default="nginx")
    args = ap.parse_args()
    os.environ["OTPD_BUILD"] = os.path.abspath(args.build)
    import conftest
    secret = "bench-secret-0123456789"
    stack = conftest.Stack()
    stop_recv = None
    try:
        stack.start()
        med, p95, n = measure_latency(stack, args.codes, secret)
        print("latency generate->webhook over %d codes: median %.1f ms, "
              "p95 %.1f ms" % (n, med, p95))
        if args.receiver == "nginx":
            url, stop_recv, count_fn = nginx_receiver(stack.tmp)
        else:
            from fakes.httpfake import WebhookFake
            hook = WebhookFake(secret)
            url, stop_recv = hook.hook_url, hook.close
            count_fn = lambda: len(hook.accepted)  # noqa: E731
        for par in (int(x) for x in args.parallel.split(",")):
            rate, inner, secs = measure_drain(stack, url, count_fn,
                                              args.jobs, par, secret)
            print("drain %d jobs to a local webhook (%s) at parallelism "
                  "%d: %.0f jobs/s start to exit (%.2f s), %.0f jobs/s "
                  "first to last delivery" % (args.jobs, args.receiver, par,
                                              rate, secs, inner))
    finally:
        if stop_recv:
            stop_recv()
        stack.stop()
        stack.cleanup()


if __name__ == "__main__":
    main()
