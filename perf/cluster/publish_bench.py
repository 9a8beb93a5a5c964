#!/usr/bin/env python3
"""perf/cluster/publish_bench.py: cross-node publish with 3 nodes, next to Redis pub/sub.

hornbeam-uring: nodes a, b, c on loopback; b and c each hold one subscription to "bench"; a
publishes N 16-byte messages from one request. Redis: redis-server (Debian's) with two redis-py
subscriber processes and one redis-py publisher process publishing the same N messages.
For both: messages delivered per second = 2 N / (wall time from the first publish to the last
message received by the slower subscriber); also the publisher's own rate. Prints a table;
--json writes the numbers.

    apt-get install -y redis-server python3-redis      # for the Redis half
    /usr/bin/python3 perf/cluster/publish_bench.py [-n 50000]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rpc_bench import REPO, free_port, get, start  # noqa: E402

REDIS_SUB = r'''
import sys, time, redis
port, n = int(sys.argv[1]), int(sys.argv[2])
p = redis.Redis(host="127.0.0.1", port=port).pubsub()
p.subscribe("bench")
p.get_message(timeout=5)
print("ready", flush=True)
got, last = 0, None
while got < n:
    m = p.get_message(timeout=10)
    if m is None:
        break
    if m["type"] == "message":
        got += 1
        last = time.time()
print(got, last)
'''

REDIS_PUB = r'''
import sys, time, redis
port, n = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port)
msg = "x" * 16
t0 = time.time()
for _ in range(n):
    r.publish("bench", msg)
print(t0, time.time() - t0)
'''


def hornbeam(binary, n, log):
    ports = [(free_port(), free_port()) for _ in range(3)]
    extra = ["--cluster-link-queue", "1048576", "--pubsub-queue-size", str(max(n, 1000))]
    procs = []
    try:
        for i, name in enumerate(("a@pub", "b@pub", "c@pub")):
            p = start(binary, name, ports[i][0], ports[i][1], ports[0][1] if i else None, 4, log,
                      extra)
            procs.append(p)
        http = [h for h, _ in ports]
        end = time.monotonic() + 30
        while True:
            try:
                if all(len(get(h, "/", 5)["nodes"]) == 2 for h in http):
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise SystemExit("the nodes did not join")
            time.sleep(0.1)
        for h in http[1:]:  # "probe" after "bench": a table with probe has bench too
            get(h, "/sub_open?topic=bench&queue=%d" % max(n, 1000))
            get(h, "/sub_open?topic=probe")
        end = time.monotonic() + 10
        while get(http[0], "/publish?topic=probe&n=1")["count"] != 2:
            if time.monotonic() > end:
                raise SystemExit("a never saw b's and c's subscriptions")
            time.sleep(0.05)
        res = {}
        waits = [threading.Thread(target=lambda h=h: res.setdefault(h, get(
            h, "/sub_wait?topic=bench&n=%d&timeout=120" % n, 180))) for h in http[1:]]
        for t in waits:
            t.start()
        time.sleep(0.2)
        pub = get(http[0], "/publish?topic=bench&n=%d" % n, 180)
        for t in waits:
            t.join()
        subs = [res[h] for h in http[1:]]
        last = max(s["last_wall"] or 0 for s in subs)
        got = sum(s["got"] for s in subs)
        return {"messages": n, "delivered": got, "dropped": sum(s["dropped"] for s in subs),
                "publish_per_s": n / pub["publish_s"],
                "delivered_per_s": got / (last - pub["start_wall"]),
                "stats_a": get(http[0], "/stats")}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def redis(n, tmp):
    port = free_port()
    rd = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save",
                           "", "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        subs = [subprocess.Popen([sys.executable, "-c", REDIS_SUB, str(port), str(n)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for s in subs:
            assert s.stdout.readline().strip() == "ready"
        pub = subprocess.run([sys.executable, "-c", REDIS_PUB, str(port), str(n)],
                             capture_output=True, text=True, timeout=300)
        t0, pub_s = map(float, pub.stdout.split())
        outs = [s.communicate(timeout=120)[0].split() for s in subs]
        got = sum(int(o[0]) for o in outs)
        last = max(float(o[1]) for o in outs)
        return {"messages": n, "delivered": got, "publish_per_s": n / pub_s,
                "delivered_per_s": got / (last - t0)}
    finally:
        rd.terminate()
        rd.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("-n", type=int, default=50000)
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hb-pub-bench-")
    log = open(os.path.join(tmp, "nodes.log"), "wb")
    out = {"hornbeam": hornbeam(a.binary, a.n, log)}
    if shutil.which("redis-server"):
        out["redis"] = redis(a.n, tmp)
    print("| system | messages | delivered | publisher msg/s | delivered msg/s |")
    print("|---|---:|---:|---:|---:|")
    for k, r in out.items():
        print("| %s | %d | %d | %.0f | %.0f |" % (
            "hornbeam-uring (3 nodes)" if k == "hornbeam" else "redis-server + redis-py",
            r["messages"], r["delivered"], r["publish_per_s"], r["delivered_per_s"]))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
