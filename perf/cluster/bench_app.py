"""perf/cluster: the app both nodes of rpc_bench.py run. Node b only answers `echo`; node a's
GET /bench?target=NODE&callers=K&seconds=S starts K threads in its worker, each calling
rpc_call(target, "bench_app", "echo", [payload]) in a loop for S seconds, and returns the count,
calls/s and latency percentiles (microseconds). With mode=call&name=N they call(N, payload)
instead (a function registered on this node, in this or another worker process: /register?name=N
registers echo as N in the worker that serves it). With pid=P (and wid=W) a route runs only in
worker process P (and its worker W: /whoami tells both) and answers {"elsewhere": ...} in the
others (the caller retries)."""
import json
import os
import threading
import time
from urllib.parse import parse_qs

import hornbeam_erlang as hb

_WID = os.urandom(4).hex()  # this worker (each worker's interpreter imports the module)


def echo(x):
    return x


def _bench(target, callers, seconds, size, mode="rpc", name=None):
    payload = "x" * size
    if mode == "call":
        def one():
            hb.call(name, payload, timeout_ms=10000)
    else:
        def one():
            hb.rpc_call(target, "bench_app", "echo", [payload], timeout_ms=10000)
    lat = [[] for _ in range(callers)]
    errors = []
    start = threading.Barrier(callers + 1)
    stop_at = [0.0]

    def run(i):
        mine = lat[i]
        start.wait()
        end = stop_at[0]
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            try:
                one()
            except Exception as e:  # counted, reported
                errors.append(repr(e))
                return
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    all_lat = sorted(x for l in lat for x in l)
    n = len(all_lat)

    def pct(p):
        return round(all_lat[min(n - 1, int(p * n))] * 1e6, 1) if n else None

    return {"callers": callers, "calls": n, "secs": round(secs, 3), "pid": os.getpid(),
            "calls_per_s": round(n / secs, 1), "p50_us": pct(0.50), "p99_us": pct(0.99),
            "errors": errors[:3]}


_subs = {}


def _sub_wait(topic, n, timeout):
    """Waits for n messages on the subscription opened by /sub_open; wall time of the last."""
    sub = _subs[topic]
    got, last = 0, None
    end = time.monotonic() + timeout
    while got < n and time.monotonic() < end:
        try:
            sub.get(timeout=0.5)
        except TimeoutError:
            continue
        got += 1
        last = time.time()
    return {"got": got, "last_wall": last, "dropped": sub.dropped}


def _publish(topic, n, size):
    msg = "x" * size
    t0 = time.time()
    count = 0
    for _ in range(n):
        count = hb.publish(topic, msg)
    return {"start_wall": t0, "publish_s": time.time() - t0, "count": count}


def app(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ["PATH_INFO"]
    want, wid = q.get("pid", [None])[0], q.get("wid", [None])[0]
    if (want and want != str(os.getpid())) or (wid and wid != _WID):
        body = {"elsewhere": [os.getpid(), _WID]}
    elif path == "/whoami":
        body = {"pid": os.getpid(), "wid": _WID}
    elif path == "/register":
        hb.register_function(q["name"][0], echo)
        body = {"ok": True, "pid": os.getpid(), "wid": _WID}
    elif path == "/sub_open":
        t = q["topic"][0]
        if t not in _subs:
            _subs[t] = hb.subscribe(t, int(q.get("queue", ["1000000"])[0]))
        body = {"ok": True}
    elif path == "/sub_wait":
        body = _sub_wait(q["topic"][0], int(q["n"][0]), float(q.get("timeout", ["120"])[0]))
    elif path == "/publish":
        body = _publish(q["topic"][0], int(q.get("n", ["1"])[0]), int(q.get("size", ["16"])[0]))
    elif path == "/stats":
        body = hb.cluster_stats()
    elif path == "/bench":
        body = _bench(q.get("target", [None])[0], int(q.get("callers", ["1"])[0]),
                      float(q.get("seconds", ["3"])[0]), int(q.get("size", ["16"])[0]),
                      q.get("mode", ["rpc"])[0], q.get("name", [None])[0])
    else:
        body = {"node": hb.node(), "nodes": hb.nodes()}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
