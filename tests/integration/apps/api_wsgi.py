"""WSGI app for test_api.py: drives hornbeam_erlang / hornbeam_ml through HTTP.

Every response is JSON and carries "who": the worker (interpreter id, pid, thread) that served
it, so that tests can tell the workers apart. Routes take their arguments in the query string;
values travel as JSON in the request body (POST).
"""
import json
import os
import threading
import time
from urllib.parse import parse_qs

import hornbeam_erlang as hb
import hornbeam_ml as ml

try:
    import _hornbeam
    _interp = _hornbeam.interpreter_id
except (ImportError, AttributeError):
    def _interp():
        return 0


def who():
    return {"interp": _interp(), "pid": os.getpid(), "tid": threading.get_native_id()}


def _decode(v):
    """JSON has no bytes or tuples: tag them."""
    if isinstance(v, bytes):
        return {"__bytes__": v.hex()}
    if isinstance(v, tuple):
        return {"__tuple__": [_decode(x) for x in v]}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        return {("b:" + k.hex() if isinstance(k, bytes) else str(k)): _decode(x) for k, x in v.items()}
    return v


def _encode(v):
    if isinstance(v, dict):
        if "__bytes__" in v:
            return bytes.fromhex(v["__bytes__"])
        if "__tuple__" in v:
            return tuple(_encode(x) for x in v["__tuple__"])
        return {k: _encode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    return v


def _key(q):
    k = q["key"][0]
    return k.encode() if q.get("bytes", ["0"])[0] == "1" else k


# -- registered functions --------------------------------------------------------------

def whoami(*args):
    return {"who": who(), "args": list(args)}


def add(a, b):
    return a + b


def explode(msg):
    raise ValueError("exploded: %s" % msg)


def ping_back(name):
    """Calls `name` (registered in another worker): used for the deadlock test."""
    return hb.call(name, timeout_ms=1000)


def bump(key, n=1):
    hb.state_incr(key, n)


def slow(seconds):
    time.sleep(seconds)
    return seconds


# -- the ML cache ------------------------------------------------------------------------

def embed(text):
    """A deterministic toy model; counts its real runs per worker in the shared map."""
    hb.state_incr("model_runs")
    return [float(len(text)), float(sum(map(ord, text)) % 1000), 0.5]


# -- routes ------------------------------------------------------------------------------

SUBS = {}  # topic -> Subscription held by this worker (/sub_open, /sub_drain)

def route(env, q, body):
    path = env["PATH_INFO"]
    if path == "/who":
        return {}
    if path == "/incr":
        return {"value": hb.state_incr(_key(q), int(q.get("delta", ["1"])[0]))}
    if path == "/decr":
        return {"value": hb.state_decr(_key(q), int(q.get("delta", ["1"])[0]))}
    if path == "/set":
        hb.state_set(_key(q), _encode(json.loads(body)))
        return {}
    if path == "/get":
        v = hb.state_get(_key(q), "__missing__")
        return {"value": _decode(v), "type": type(v).__name__}
    if path == "/delete":
        return {"deleted": hb.state_delete(_key(q))}
    if path == "/keys":
        prefix = q.get("prefix", [None])[0]
        if q.get("bytes", ["0"])[0] == "1":
            prefix = prefix.encode()
        ks = hb.state_keys(prefix)
        return {"keys": sorted(k for k in ks if isinstance(k, str)),
                "bytes_keys": sorted(k.hex() for k in ks if isinstance(k, bytes))}
    if path == "/multi":
        return {"values": _decode(hb.state_get_multi(q["k"]))}
    if path == "/setbytes":
        size = int(q["size"][0])
        hb.state_set(_key(q), bytes(range(256)) * (size // 256) + bytes(size % 256))
        return {}
    if path == "/getbytes":
        v = hb.state_get(_key(q))
        return {"len": len(v), "ok": v == bytes(range(256)) * (len(v) // 256) + bytes(len(v) % 256)}
    if path == "/badtype":
        kind = q["kind"][0]
        value = {"set": {1, 2}, "object": object(), "nested": [1, {"a": frozenset()}],
                 "complex": 1j}[kind]
        hb.state_set("bad", value)  # raises TypeError: the server answers 500
        return {}
    if path == "/limits":
        out = {}
        try:
            hb.state_set("k" * 5000, 1)
        except hb.StateLimitError as e:
            out["key"] = ["StateLimitError", isinstance(e, ValueError), str(e)]
        try:
            hb.state_set("big", b"x" * (int(q["value"][0])))
        except hb.StateLimitError as e:
            out["value"] = ["StateLimitError", isinstance(e, ValueError), str(e)]
        try:
            hb.state_set("notint", "x")
            hb.state_incr("notint")
        except TypeError as e:
            out["incr"] = ["TypeError", str(e)]
        hb.state_set("huge", (1 << 63) - 1)
        try:
            hb.state_incr("huge")
        except OverflowError as e:
            out["overflow"] = ["OverflowError", str(e)]
        return out
    if path == "/fill":
        # Writes 1 MiB values until the budget runs out.
        n = 0
        try:
            while n < 10000:
                hb.state_set("fill:%d" % n, b"x" * (1 << 20))
                n += 1
        except hb.StateFullError as e:
            return {"stored": n, "error": "StateFullError", "memory": isinstance(e, MemoryError)}
        return {"stored": n, "error": None}
    if path == "/unfill":
        for k in hb.state_keys("fill:"):
            hb.state_delete(k)
        return {}
    if path == "/publish":
        return {"reached": hb.publish(q["topic"][0], _encode(json.loads(body)) if body else q["msg"][0])}
    if path == "/sub_open":
        # Subscribes in this worker and keeps the subscription for /sub_drain.
        topic = q["topic"][0]
        SUBS[topic] = hb.subscribe(topic, queue_size=int(q.get("queue", ["1000"])[0]))
        return {}
    if path == "/sub_drain":
        # Only the worker that holds the subscription can drain it ("here": false elsewhere).
        sub = SUBS.get(q["topic"][0])
        if sub is None:
            return {"here": False}
        got = []
        while True:
            m = sub.get_nowait(None)
            if m is None:
                break
            got.append(m)
        out = {"here": True, "got": _decode(got), "dropped": sub.dropped,
               "queue_size": sub.queue_size, "pending": sub.pending}
        if q.get("close", ["1"])[0] == "1":
            SUBS.pop(q["topic"][0]).close()
        return out
    if path == "/collect":
        # Subscribes, says so in the shared map, then collects n messages (sync get).
        topic, n = q["topic"][0], int(q["n"][0])
        sub = hb.subscribe(topic, queue_size=int(q.get("queue", ["1000"])[0]))
        hb.state_incr("subscribed:" + topic)
        delay = float(q.get("delay", ["0"])[0])
        if delay:
            time.sleep(delay)  # a slow subscriber: the queue overflows meanwhile
        got = []
        try:
            while len(got) < n:
                got.append(sub.get(timeout=float(q.get("timeout", ["10"])[0])))
        except TimeoutError:
            pass
        out = {"got": _decode(got), "dropped": sub.dropped, "queue_size": sub.queue_size,
               "pending": sub.pending}
        sub.close()
        return out
    if path == "/async_collect":
        # `async for` on an asyncio loop (the eventfd + add_reader path) while a thread of this
        # worker publishes, one message at a time with pauses so that the loop really sleeps.
        import asyncio
        topic, n = q["topic"][0], int(q["n"][0])

        def publisher():
            for i in range(n):
                time.sleep(0.005)
                hb.publish(topic, [i, "x" * i])

        async def collect():
            got = []
            async with hb.subscribe(topic) as sub:
                threading.Thread(target=publisher).start()
                async for m in sub:
                    got.append(m)
                    if len(got) == n:
                        break
            return got, sub.closed

        got, closed = asyncio.run(asyncio.wait_for(collect(), float(q.get("timeout", ["10"])[0])))
        return {"got": _decode(got), "closed": closed}
    if path == "/register":
        hb.register_function(q["name"][0], globals()[q["fn"][0]])
        return {}
    if path == "/unregister":
        return {"removed": hb.unregister_function(q["name"][0])}
    if path == "/call":
        args = _encode(json.loads(body)) if body else []
        kw = {"timeout_ms": int(q["timeout_ms"][0])} if "timeout_ms" in q else {}
        try:
            return {"result": _decode(hb.call(q["name"][0], *args, **kw))}
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}
    if path == "/cast":
        hb.cast(q["name"][0], *(_encode(json.loads(body)) if body else []))
        return {}
    if path == "/rpc":
        try:
            return {"result": _decode(hb.rpc_call(q.get("node", [hb.node()])[0], q["module"][0],
                                                  q["function"][0], json.loads(body) if body else []))}
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}
    if path == "/rpc_cast":
        hb.rpc_cast(hb.node(), q["module"][0], q["function"][0], json.loads(body) if body else [])
        return {}
    if path == "/node":
        return {"node": hb.node(), "nodes": hb.nodes(), "native": hb.NATIVE}
    if path == "/ml":
        v = ml.cached_inference(embed, q["text"][0])
        return {"embedding": list(v), "stats": ml.cache_stats()}
    if path == "/ml_key":
        # An explicit cache_key (such as "__hits") in its own prefix; stats of that prefix.
        prefix = q.get("prefix", ["ml"])[0]
        kw = {"max_entries": int(q["max_entries"][0])} if "max_entries" in q else {}
        v = ml.cached_inference(embed, q["text"][0], cache_key=q["key"][0], cache_prefix=prefix, **kw)
        return {"embedding": list(v), "stats": ml.cache_stats(prefix),
                "keys": sorted(k for k in hb.state_keys(prefix + ":") if isinstance(k, str))}
    if path == "/ml_clear":
        return {"cleared": ml.cache_clear(q["prefix"][0]), "stats": ml.cache_stats(q["prefix"][0])}
    if path == "/sub_drop":
        # Subscribes, drops the Subscription without close(), then publishes: a dropped
        # subscription must not be reached (nor counted).
        topic = q["topic"][0]
        sub = hb.subscribe(topic)
        before = hb.publish(topic, "before")
        del sub
        return {"before": before, "after": hb.publish(topic, "after")}
    if path == "/sleep":
        time.sleep(float(q["s"][0]))
        return {}
    if path == "/stats":
        return {"stats": hb.state_stats()}
    raise KeyError(path)


def app(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    if not body and environ["REQUEST_METHOD"] == "POST":
        body = b"null"
    try:
        out = route(environ, q, body)
        status = "200 OK"
    except KeyError as e:
        out, status = {"error": "not found: %s" % e}, "404 Not Found"
    except Exception as e:
        # The 500 names the exception, so tests can check the message.
        out, status = {"error": type(e).__name__, "message": str(e)}, "500 Internal Server Error"
    out["who"] = who()
    data = json.dumps(out).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
