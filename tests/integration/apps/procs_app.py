"""ASGI app for test_processes_api.py (processes = 2): shared state, pub/sub and call() across
worker processes.

At import each process registers "pid-<pid>" (returns its pid), "fail-<pid>" (raises) and
"slow-<pid>" (sleeps). HTTP: /who, /incr?key=K&n=N (N state_incr, returns the last value),
/get?key=K, /publish?topic=T&msg=M -> {"reached": n}, /call?name=N&timeout_ms=T,
/names -> registered_functions(). WebSocket /ws/<topic>: sends {"pid": ..} once subscribed,
then every message published to the topic.
"""
import asyncio
import json
import os
import time
from urllib.parse import parse_qs

import hornbeam_erlang as hb
from asgi_util import asgi_app

PID = os.getpid()


def _pid():
    return PID


def _fail():
    raise ValueError("failed in %d" % PID)


def _slow(secs):
    time.sleep(secs)
    return PID


hb.register_function("pid-%d" % PID, _pid)
hb.register_function("fail-%d" % PID, _fail)
hb.register_function("slow-%d" % PID, _slow)


def _call(name, timeout_ms, args):
    try:
        return {"result": hb.call(name, *args, timeout_ms=timeout_ms)}
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e)}


async def http(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    q = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    path = scope["path"]
    out = {"pid": PID}
    if path == "/incr":
        v = None
        for _ in range(int(q.get("n", "1"))):
            v = hb.state_incr(q["key"])
        out["value"] = v
    elif path == "/get":
        out["value"] = hb.state_get(q["key"])
    elif path == "/publish":
        out["reached"] = hb.publish(q["topic"], q.get("msg", ""))
    elif path == "/call":
        args = json.loads(q.get("args", "[]"))
        loop = asyncio.get_running_loop()
        out.update(await loop.run_in_executor(None, _call, q["name"],
                                              int(q.get("timeout_ms", "5000")), args))
    elif path == "/names":
        out["names"] = sorted(hb.registered_functions())
    data = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def websocket(scope, receive, send):
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    sub = hb.subscribe(scope["path"][len("/ws/"):])
    await send({"type": "websocket.send", "text": json.dumps({"pid": PID})})

    async def pump():
        async for m in sub:
            await send({"type": "websocket.send", "text": json.dumps(m)})

    task = asyncio.ensure_future(pump())
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        task.cancel()
        sub.close()


app = asgi_app(http, websocket)
