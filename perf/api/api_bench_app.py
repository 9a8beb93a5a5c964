"""WSGI app for perf/api/bench_api.py: timed loops of hornbeam_erlang calls inside a worker.

Each route runs a tight Python loop in the worker that serves it and returns its own timing,
so the figures are the API's cost per call (no HTTP in the loop).
"""
import json
import os
import threading
import time
from urllib.parse import parse_qs

import hornbeam_erlang as hb

try:
    from _hornbeam import interpreter_id
except ImportError:
    def interpreter_id():
        return 0


def who():
    return {"interp": interpreter_id(), "pid": os.getpid(), "tid": threading.get_native_id()}


def state_loop(op, n, key):
    if op == "incr":
        f = hb.state_incr
        t0 = time.perf_counter()
        for _ in range(n):
            f(key)
    elif op == "get":
        hb.state_set(key, 12345)
        f = hb.state_get
        t0 = time.perf_counter()
        for _ in range(n):
            f(key)
    elif op == "get_str100":
        hb.state_set(key, "x" * 100)
        f = hb.state_get
        t0 = time.perf_counter()
        for _ in range(n):
            f(key)
    elif op == "set":
        f = hb.state_set
        t0 = time.perf_counter()
        for i in range(n):
            f(key, i)
    else:
        raise KeyError(op)
    return time.perf_counter() - t0


def sub_loop(topic, n, timeout):
    """Subscribes, then takes n messages (blocking get); timing starts at the first one."""
    sub = hb.subscribe(topic, queue_size=max(n, 1))
    hb.state_incr("bench_subscribed:" + topic)
    first = sub.get(timeout=timeout)
    t0 = time.perf_counter()
    got = 1
    try:
        while got < n:
            sub.get(timeout=timeout)
            got += 1
    except TimeoutError:
        pass
    elapsed = time.perf_counter() - t0
    out = {"received": got, "dropped": sub.dropped, "elapsed": elapsed}
    sub.close()
    del first
    return out


def fanout(subs, n, size):
    """One publisher, `subs` subscribers in this worker: publish n, then drain everything."""
    topic = "fanout-%d" % time.monotonic_ns()
    ss = [hb.subscribe(topic, queue_size=n) for _ in range(subs)]
    msg = "x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        hb.publish(topic, msg)
    t1 = time.perf_counter()
    got = 0
    for s in ss:
        while s.get_nowait(None) is not None:
            got += 1
    t2 = time.perf_counter()
    for s in ss:
        s.close()
    return {"delivered": got, "publish_s": t1 - t0, "total_s": t2 - t0}


def app(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ["PATH_INFO"]
    out = {}
    if path == "/state":
        n = int(q["n"][0])
        el = state_loop(q["op"][0], n, q.get("key", ["bench"])[0])
        out = {"n": n, "elapsed": el, "ops_per_s": n / el}
    elif path == "/sub":
        out = sub_loop(q["topic"][0], int(q["n"][0]), float(q.get("timeout", ["5"])[0]))
    elif path == "/pub":
        topic, n, size = q["topic"][0], int(q["n"][0]), int(q.get("size", ["16"])[0])
        msg = "x" * size
        t0 = time.perf_counter()
        reached = 0
        for _ in range(n):
            reached += hb.publish(topic, msg)
        out = {"reached": reached, "elapsed": time.perf_counter() - t0}
    elif path == "/fanout":
        out = fanout(int(q["subs"][0]), int(q["n"][0]), int(q.get("size", ["16"])[0]))
    elif path == "/get":
        out = {"value": hb.state_get(q["key"][0])}
    out["who"] = who()
    out["native"] = hb.NATIVE
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
