#!/usr/bin/python3
"""hornbeam_erlang's shared state and pub/sub, side by side with redis-py against redis-server.

    /usr/bin/python3 perf/api/bench_api.py                 # 2 workers, ~30 s
    /usr/bin/python3 perf/api/bench_api.py --workers 4 -n 500000 --redis-n 50000

In one run, on this machine:
  1. hornbeam-uring serving perf/api/api_bench_app.py; each measurement is a tight Python loop
     inside a worker (state_incr / state_get / state_set), timed by the worker itself: first
     one worker alone, then every worker at once (each request checked to land on a different
     worker), giving operations per second per worker and in total;
  2. redis-server (Debian's, started here on a free loopback port, no persistence) and redis-py
     clients in plain /usr/bin/python3 processes: INCR and GET, one client alone and then as
     many clients at once as there are workers;
  3. pub/sub deliveries per second: a publisher in one worker and a subscriber (blocking get) in
     the other; and fan-out inside one worker (1 publisher, S subscribers, drained after);
     plus redis-py PUBLISH to one subscribed redis-py client for comparison.
Prints a table and writes perf/api/results/api-<time>.json. Stdlib only (redis-py in the
clients).
"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("%s -> %d %r" % (path, r.status, body[:300]))
        return json.loads(body)
    finally:
        c.close()


def wait_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not ready" % port)


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)


# ---- hornbeam ------------------------------------------------------------------------------

def concurrent(port, paths):
    """Sends the requests at once; returns their answers (in order)."""
    out = [None] * len(paths)
    errs = []

    def run(i):
        try:
            out[i] = get(port, paths[i])
        except Exception as e:
            errs.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(paths))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out


def hb_state(port, workers, n):
    res = {}
    for op in ("incr", "get", "get_str100", "set"):
        alone = get(port, "/state?op=%s&n=%d&key=alone_%s" % (op, n, op))
        # Every worker at once; retry until each request landed on a different worker.
        for _ in range(10):
            outs = concurrent(port, ["/state?op=%s&n=%d&key=%s" % (op, n, "shared_" + op)] * workers)
            if len({o["who"]["interp"] for o in outs}) == workers:
                break
        else:
            outs = None
        res[op] = {
            "one_worker_ops_per_s": alone["ops_per_s"],
            "per_worker_ops_per_s_all_busy": [o["ops_per_s"] for o in outs] if outs else None,
            "total_ops_per_s_all_busy": sum(o["ops_per_s"] for o in outs) if outs else None,
        }
    if res["incr"]["total_ops_per_s_all_busy"]:
        final = get(port, "/get?key=shared_incr")["value"]
        res["incr"]["shared_counter_check"] = final == n * workers
    return res


def hb_pubsub(port, n, subs, fan_n):
    topic = "bench-%d" % time.monotonic_ns()
    box = {}
    t = threading.Thread(target=lambda: box.update(sub=get(port, "/sub?topic=%s&n=%d" % (topic, n))))
    t.start()
    deadline = time.monotonic() + 10
    while (get(port, "/get?key=bench_subscribed:" + topic)["value"] or 0) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("subscriber did not start")
        time.sleep(0.01)
    pub = get(port, "/pub?topic=%s&n=%d" % (topic, n))
    t.join(120)
    sub = box["sub"]
    fan = get(port, "/fanout?subs=%d&n=%d" % (subs, fan_n))
    return {
        "cross_worker": {
            "messages": n, "received": sub["received"], "dropped": sub["dropped"],
            "publisher_worker": pub["who"]["interp"], "subscriber_worker": sub["who"]["interp"],
            "publishes_per_s": n / pub["elapsed"],
            "deliveries_per_s": sub["received"] / sub["elapsed"] if sub["elapsed"] else None,
        },
        "fanout_one_worker": {
            "subscribers": subs, "messages": fan_n, "delivered": fan["delivered"],
            "deliveries_per_s_publish": fan["delivered"] / fan["publish_s"],
            "deliveries_per_s_publish_and_drain": fan["delivered"] / fan["total_s"],
        },
    }


# ---- redis ---------------------------------------------------------------------------------

REDIS_CLIENT = r'''
import sys, time, redis
port, op, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
r = redis.Redis(host="127.0.0.1", port=port)
r.set("g", 12345)
f = r.incr if op == "incr" else r.get
key = "c" if op == "incr" else "g"
for _ in range(1000):
    f(key)
t0 = time.perf_counter()
for _ in range(n):
    f(key)
print(n / (time.perf_counter() - t0))
'''

REDIS_SUB = r'''
import sys, time, redis
port, n = int(sys.argv[1]), int(sys.argv[2])
p = redis.Redis(host="127.0.0.1", port=port).pubsub()
p.subscribe("bench")
p.get_message(timeout=5)  # the subscribe confirmation
print("ready", flush=True)
got, t0 = 0, None
while got < n:
    m = p.get_message(timeout=5)
    if m is None:
        break
    if m["type"] == "message":
        got += 1
        if t0 is None:
            t0 = time.perf_counter()
print(got, (got - 1) / (time.perf_counter() - t0) if got > 1 else 0)
'''

REDIS_PUB = r'''
import sys, time, redis
port, n = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port)
t0 = time.perf_counter()
for _ in range(n):
    r.publish("bench", "x" * 16)
print(n / (time.perf_counter() - t0))
'''


def redis_clients(port, op, n, k):
    procs = [subprocess.Popen([sys.executable, "-c", REDIS_CLIENT, str(port), op, str(n)],
                              stdout=subprocess.PIPE) for _ in range(k)]
    return [float(p.communicate(timeout=300)[0]) for p in procs]


def redis_bench(port, n, workers, pub_n):
    res = {}
    for op in ("incr", "get"):
        one = redis_clients(port, op, n, 1)[0]
        many = redis_clients(port, op, n, workers)
        res[op] = {"one_client_ops_per_s": one, "per_client_ops_per_s_all_busy": many,
                   "total_ops_per_s_all_busy": sum(many)}
    sub = subprocess.Popen([sys.executable, "-c", REDIS_SUB, str(port), str(pub_n)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout.readline().strip() == "ready"
    pub = subprocess.run([sys.executable, "-c", REDIS_PUB, str(port), str(pub_n)],
                         capture_output=True, text=True, timeout=300)
    got, rate = sub.communicate(timeout=60)[0].split()
    res["pubsub"] = {"messages": pub_n, "received": int(got), "publishes_per_s": float(pub.stdout),
                     "deliveries_per_s": float(rate)}
    return res


# ---- main ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-n", type=int, default=300000, help="hornbeam calls per loop")
    ap.add_argument("--redis-n", type=int, default=30000, help="redis-py calls per client")
    ap.add_argument("--pub-n", type=int, default=100000, help="messages, cross-worker pub/sub")
    ap.add_argument("--fanout-subs", type=int, default=100)
    ap.add_argument("--fanout-n", type=int, default=2000)
    ap.add_argument("--hornbeam-bin", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--redis-bin", default="/usr/bin/redis-server")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hb-api-bench-")
    hb_port, redis_port = free_port(), free_port()
    hb = rd = None
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "workers": a.workers,
              "cpus": os.cpu_count(), "n": a.n, "redis_n": a.redis_n}
    try:
        hb = subprocess.Popen([a.hornbeam_bin, "api_bench_app:app", "--bind", "127.0.0.1:%d" % hb_port,
                               "--workers", str(a.workers), "--threads", "1", "--pythonpath", str(HERE),
                               "--pubsub-queue-size", str(max(a.pub_n, 1000))],
                              cwd=tmp, stdout=open(os.path.join(tmp, "hb.log"), "wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(hb_port, hb)
        get(hb_port, "/state?op=incr&n=1000&key=warmup")
        print("hornbeam-uring: state loops (%d calls each)..." % a.n, flush=True)
        result["hornbeam_state"] = hb_state(hb_port, a.workers, a.n)
        print("hornbeam-uring: pub/sub...", flush=True)
        result["hornbeam_pubsub"] = hb_pubsub(hb_port, a.pub_n, a.fanout_subs, a.fanout_n)
        stop(hb)
        hb = None

        rd = subprocess.Popen([a.redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", tmp],
                              stdout=open(os.path.join(tmp, "redis.log"), "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
        wait_port(redis_port, rd)
        print("redis-server + redis-py (%d calls per client)..." % a.redis_n, flush=True)
        result["redis"] = redis_bench(redis_port, a.redis_n, a.workers, min(a.pub_n, 50000))
    finally:
        stop(hb)
        stop(rd)

    hs, rs = result["hornbeam_state"], result["redis"]
    print()
    print("%-34s %16s %16s %10s" % ("operation (ops/s)", "hornbeam", "redis-py", "ratio"))
    for op, rop in (("incr", "incr"), ("get", "get")):
        for label, hk, rk in (("one worker / one client", "one_worker_ops_per_s", "one_client_ops_per_s"),
                              ("all %d busy, total" % a.workers, "total_ops_per_s_all_busy",
                               "total_ops_per_s_all_busy")):
            h, r = hs[op][hk], rs[rop][rk]
            print("%-34s %16s %16s %10s" % ("%s, %s" % (op, label), "%.0f" % h if h else "n/a",
                                            "%.0f" % r, "%.1fx" % (h / r) if h else "n/a"))
    for op in ("get_str100", "set"):
        print("%-34s %16.0f %16s" % (op + ", one worker", hs[op]["one_worker_ops_per_s"], "-"))
    if "shared_counter_check" in hs["incr"]:
        print("shared counter exact after concurrent incr: %s" % hs["incr"]["shared_counter_check"])
    ps = result["hornbeam_pubsub"]
    print("pub/sub cross-worker deliveries/s: hornbeam %.0f (received %d/%d, dropped %d), redis-py %.0f"
          % (ps["cross_worker"]["deliveries_per_s"] or 0, ps["cross_worker"]["received"],
             ps["cross_worker"]["messages"], ps["cross_worker"]["dropped"],
             rs["pubsub"]["deliveries_per_s"]))
    print("pub/sub fan-out in one worker (%d subscribers): %.0f deliveries/s while publishing, "
          "%.0f including draining" % (a.fanout_subs, ps["fanout_one_worker"]["deliveries_per_s_publish"],
                                       ps["fanout_one_worker"]["deliveries_per_s_publish_and_drain"]))
    if not a.no_save:
        os.makedirs(a.out_dir, exist_ok=True)
        path = os.path.join(a.out_dir, "api-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print("saved", path)


if __name__ == "__main__":
    main()
