"""Apps for test_cluster_rpc.py: a WSGI app (`wsgi`) and an ASGI app (`asgi`) that drive
rpc_call/rpc_cast/arpc_call/call/publish across nodes through HTTP, and the functions other
nodes call in this module (echo, boom, sleep, nap, length, remember, where).

Routes take their arguments in the query string; `args` is a JSON list. Every reply is JSON:
{"ok": result} or {"error": exception class name, "msg": text}. With `pid`, a route runs only in
that worker process and answers {"elsewhere": pid} in the others (the test retries).
"""
import json
import os
import threading
import time
from urllib.parse import parse_qs

import hornbeam_erlang as hb

# ---- called from other nodes


def echo(*args):
    return [hb.node(), list(args)]


def boom(text):
    raise ValueError("boom: %s" % text)


def sleep(seconds):
    time.sleep(seconds)
    return hb.node()


def nap(topic, seconds):
    """sleep, saying first on topic that it started (the test waits for that, then kills)."""
    hb.publish(topic, {"napping": True})
    time.sleep(seconds)
    return hb.node()


def length(data):
    return [len(data), data[:2].decode(), data[-2:].decode()]


def remember(key, value):
    hb.state_set(key, value)


def double(x):
    return [hb.node(), x * 2]


def where(*args):
    """Which node and worker process ran it (processes > 1)."""
    return [hb.node(), os.getpid(), list(args)]


_REGISTRABLE = {"remember": remember, "where": where, "sleep": sleep}


# ---- the routes

_subs = {}
_lock = threading.Lock()


def _q(qs, name, default=None):
    v = qs.get(name)
    return v[0] if v else default


def _result(fn):
    try:
        return {"ok": fn()}
    except Exception as e:  # the test looks at the class and the text
        return {"error": type(e).__name__, "msg": str(e),
                "mro": [c.__name__ for c in type(e).__mro__]}


def route(path, qs):
    want = _q(qs, "pid")  # run only in that worker process (the test retries until it lands)
    if want and path != "/register" and want != str(os.getpid()):
        return {"elsewhere": os.getpid()}
    args = json.loads(_q(qs, "args", "[]"))
    node = _q(qs, "node")
    if path == "/nodes":
        return {"node": hb.node(), "nodes": hb.nodes()}
    if path == "/rpc":
        timeout = int(_q(qs, "timeout", "5000"))
        mod = _q(qs, "mod", "cluster_apps")
        big = int(_q(qs, "big", "0"))
        if big:
            args = [b"<" + b"x" * (big - 2) + b">"]
        return _result(lambda: hb.rpc_call(node, mod, _q(qs, "fn"), args, timeout_ms=timeout))
    if path == "/cast":
        return _result(lambda: hb.rpc_cast(node, "cluster_apps", _q(qs, "fn"), args))
    if path == "/call":
        timeout = int(_q(qs, "timeout", "30000"))
        return _result(lambda: hb.call(_q(qs, "name"), *args, timeout_ms=timeout))
    if path == "/ccast":
        return _result(lambda: hb.cast(_q(qs, "name"), *args))
    if path == "/register":
        if _q(qs, "pid") not in (None, str(os.getpid())):  # only in that process
            return {"ok": False}
        hb.register_function(_q(qs, "name"), _REGISTRABLE.get(_q(qs, "fn"), double))
        return {"ok": True}
    if path == "/whoami":
        return {"pid": os.getpid(), "nodes": hb.nodes()}
    if path == "/state":
        return {"ok": hb.state_get(_q(qs, "key"))}
    if path == "/publish":
        topic = _q(qs, "topic")
        n = int(_q(qs, "n", "1"))
        size = int(_q(qs, "size", "0"))
        pad = "p" * size
        tag = _q(qs, "tag", "")
        t0 = time.monotonic()
        counts = [hb.publish(topic, {"seq": i, "from": hb.node(), "pad": pad, "tag": tag})
                  for i in range(n)]
        return {"ok": counts[-1] if counts else 0, "secs": time.monotonic() - t0}
    if path == "/sub_open":
        topic = _q(qs, "topic")
        with _lock:
            if topic not in _subs:
                _subs[topic] = hb.subscribe(topic, int(_q(qs, "queue", "10000")))
        return {"ok": True}
    if path == "/sub_drain":
        sub = _subs[_q(qs, "topic")]
        got = []
        while True:
            try:
                m = sub.get(timeout=0)
            except Exception:
                break
            if m is None:
                break
            m.pop("pad", None)
            got.append(m)
        return {"ok": got, "dropped": sub.dropped}
    if path == "/stats":
        return {"ok": hb.cluster_stats()}
    return None


def wsgi(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    body = route(environ["PATH_INFO"], qs)
    status = "200 OK" if body is not None else "404 Not Found"
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [data]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    qs = parse_qs(scope.get("query_string", b"").decode())
    path = scope["path"]
    want = _q(qs, "pid")
    if path == "/arpc" and want and want != str(os.getpid()):
        body = {"elsewhere": os.getpid()}
    elif path == "/arpc":
        args = json.loads(_q(qs, "args", "[]"))
        timeout = int(_q(qs, "timeout", "5000"))
        try:
            body = {"ok": await hb.arpc_call(_q(qs, "node"), "cluster_apps", _q(qs, "fn"),
                                             args, timeout_ms=timeout)}
        except Exception as e:
            body = {"error": type(e).__name__, "msg": str(e)}
    else:
        body = route(path, qs)
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 200 if body is not None else 404,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
