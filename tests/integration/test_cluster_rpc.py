"""test_cluster_rpc.py: calls and publishes between real hornbeam-uring nodes on loopback.

Nodes run apps/cluster_apps.py (a WSGI app, or its ASGI twin) and are driven through HTTP:
rpc_call/rpc_cast/arpc_call to another node, the remote exception as RemoteError, TimeoutError,
NodeNotConnected, kill -9 of the called node mid-call as NodeDown (quickly), 4 MiB arguments,
a cluster.rpc_allow refusal, call() of a function registered on another node, and publish()
reaching subscribers on every node in order, with the total count, and bounded towards a
stopped node (oldest dropped, counted). Tables (registered names, subscriptions) travel
asynchronously, so tests poll for them rather than sleep.
"""
import json
import os
import signal
import threading
import time
from urllib.parse import quote

from hbtest import free_port, http

COOKIE = "rpc-cookie"


def node(server, name, seeds=(), app="cluster_apps:wsgi", extra=(), probe="200ms"):
    port = free_port()
    args = ["--node-name", name, "--cluster-enabled", "--cluster-bind", "127.0.0.1:%d" % port,
            "--cluster-probe-interval", probe, "--cluster-probe-timeout", "100ms",
            "--threads", "4"]
    if app.endswith(":asgi"):
        args += ["--worker-class", "asgi"]
    for s in seeds:
        args += ["--cluster-seeds", s]
    s = server(app, *(args + list(extra)), env={"HORNBEAM_CLUSTER_COOKIE": COOKIE})
    s.cluster_port = port
    s.seed = "127.0.0.1:%d" % port
    return s


def get(s, path, http_timeout=20, **q):
    qs = "&".join("%s=%s" % (k, quote(v if isinstance(v, str) else json.dumps(v)))
                  for k, v in q.items())
    r = http(s.port, "GET", path + ("?" + qs if qs else ""), [], b"", timeout=http_timeout)
    assert r.status == 200, r
    return r.json()


def until(fn, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s not reached in %.0fs (last: %r)" % (what, timeout, last))


def pair(server, app_a="cluster_apps:wsgi", app_b="cluster_apps:wsgi", extra_b=(), **kw):
    a = node(server, "a@rpc", app=app_a, **kw)
    b = node(server, "b@rpc", [a.seed], app=app_b, extra=extra_b, **kw)
    until(lambda: get(a, "/nodes")["nodes"] == ["b@rpc"], what="a sees b")
    until(lambda: get(b, "/nodes")["nodes"] == ["a@rpc"], what="b sees a")
    return a, b


def test_rpc_call_cast_errors_and_big_args(server):
    a, b = pair(server)
    # a value through the codec both ways, run in b's worker
    r = get(a, "/rpc", node="b@rpc", fn="echo", args=[1, "two", [3.5, None], {"k": True}])
    assert r == {"ok": ["b@rpc", [1, "two", [3.5, None], {"k": True}]]}, r
    # and back: b calls a
    assert get(b, "/rpc", node="a@rpc", fn="echo", args=[7])["ok"] == ["a@rpc", [7]]
    # the remote exception, with its traceback text
    r = get(a, "/rpc", node="b@rpc", fn="boom", args=["kaput"])
    assert r["error"] == "RemoteError" and "RuntimeError" in r["mro"], r
    assert "ValueError: boom: kaput" in r["msg"] and "Traceback" in r["msg"], r
    assert "b@rpc" in r["msg"]
    # an unknown function is the remote's AttributeError
    r = get(a, "/rpc", node="b@rpc", fn="no_such_function")
    assert r["error"] == "RemoteError" and "AttributeError" in r["msg"], r
    # a node nobody knows
    r = get(a, "/rpc", node="nobody@rpc", fn="echo")
    assert r["error"] == "NodeNotConnected", r
    # timeout_ms
    t0 = time.monotonic()
    r = get(a, "/rpc", node="b@rpc", fn="sleep", args=[3], timeout="300")
    took = time.monotonic() - t0
    assert r["error"] == "TimeoutError" and "300 ms" in r["msg"], r
    assert took < 2.5, took
    # 4 MiB of arguments (split into 64 KiB frames) and a small call right behind
    big = 4 << 20
    r = get(a, "/rpc", node="b@rpc", fn="length", big=str(big))
    assert r["ok"] == [big, "<x", "x>"], r
    assert get(a, "/rpc", node="b@rpc", fn="echo", args=["after"])["ok"] == ["b@rpc", ["after"]]
    # rpc_cast: fire and forget, it runs on b
    assert get(a, "/cast", node="b@rpc", fn="remember", args=["cast-key", [1, 2]]) == {"ok": None}
    until(lambda: get(b, "/state", key="cast-key")["ok"] == [1, 2], what="the cast ran on b")
    st = get(a, "/stats")["ok"]
    assert st["calls_sent"] >= 6, st
    assert get(b, "/stats")["ok"]["calls_served"] >= 6


def test_asgi_arpc_call_does_not_block_the_loop(server):
    a, b = pair(server, app_a="cluster_apps:asgi")
    assert get(a, "/arpc", node="b@rpc", fn="echo", args=["x"])["ok"] == ["b@rpc", ["x"]]
    r = get(a, "/arpc", node="b@rpc", fn="boom", args=["async"])
    assert r["error"] == "RemoteError" and "boom: async" in r["msg"], r
    # a slow remote call in flight; the same event loop still answers at once
    slow = {}
    t = threading.Thread(target=lambda: slow.update(
        get(a, "/arpc", node="b@rpc", fn="sleep", args=[1.5], timeout="5000")))
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert get(a, "/nodes")["nodes"] == ["b@rpc"]
    assert time.monotonic() - t0 < 1.0
    t.join(10)
    assert slow == {"ok": "b@rpc"}, slow
    # rpc_cast and publish from ASGI too
    assert get(a, "/cast", node="b@rpc", fn="remember", args=["asgi-cast", "yes"]) == {"ok": None}
    until(lambda: get(b, "/state", key="asgi-cast")["ok"] == "yes", what="asgi cast ran")


def test_node_killed_mid_call_is_node_down_at_once(server):
    a, b = pair(server)
    out = {}
    t = threading.Thread(target=lambda: out.update(
        get(a, "/rpc", node="b@rpc", fn="sleep", args=[20], timeout="30000", http_timeout=40)))
    t.start()
    # (not asking b: the worker thread running the call may be the one its request waits for)
    until(lambda: get(a, "/stats")["ok"]["calls_sent"] >= 1, what="a sent the call")
    time.sleep(0.3)
    server.servers.remove(b)
    t0 = time.monotonic()
    os.killpg(b.pid, signal.SIGKILL)  # the whole node: master and worker process
    b.wait_exit(5)
    b.stop()
    t.join(15)
    took = time.monotonic() - t0
    assert out.get("error") == "NodeDown", out
    assert "b@rpc" in out["msg"] and "went down" in out["msg"], out
    assert "NodeNotConnected" in out["mro"]
    assert took < 3.0, took


def test_rpc_allow_refuses_other_modules(server):
    a, b = pair(server, extra_b=["--cluster-rpc-allow", "cluster_apps"])
    assert get(a, "/rpc", node="b@rpc", fn="echo", args=[1])["ok"] == ["b@rpc", [1]]
    r = get(a, "/rpc", node="b@rpc", mod="os", fn="getpid")
    assert r["error"] == "RemoteError" and "rpc_allow" in r["msg"] and "os:getpid" in r["msg"], r
    assert get(b, "/stats")["ok"]["calls_refused"] == 1
    assert "may not call os:getpid" in b.stderr()


def test_call_finds_a_function_registered_on_another_node(server):
    a, b = pair(server)
    r = get(a, "/call", name="double", args=[21])
    assert r["error"] == "FunctionNotRegistered", r
    assert get(b, "/register", name="double") == {"ok": True}
    r = until(lambda: (lambda r: r if "ok" in r else None)(get(a, "/call", name="double", args=[21])),
              what="a finds b's double")
    assert r["ok"] == ["b@rpc", 42]
    # registered on a too now: this node's own first
    assert get(a, "/register", name="double") == {"ok": True}
    assert get(a, "/call", name="double", args=[1])["ok"] == ["a@rpc", 2]
    # cast() of a name registered on b runs there
    assert get(b, "/register", name="keep", fn="remember") == {"ok": True}
    until(lambda: get(a, "/ccast", name="keep", args=["cast-named", 5]) == {"ok": None},
          what="a finds b's keep")
    until(lambda: get(b, "/state", key="cast-named")["ok"] == 5, what="the cast ran on b")


def test_publish_reaches_every_node_in_order_with_the_total_count(server):
    a = node(server, "a@rpc")
    b = node(server, "b@rpc", [a.seed])
    c = node(server, "c@rpc", [a.seed], app="cluster_apps:asgi")
    for s in (a, b, c):
        until(lambda: len(get(s, "/nodes")["nodes"]) == 2, what="three nodes")
        get(s, "/sub_open", topic="news")
    # the count comes from the tables the others announced: wait until they arrived. These
    # probes are tagged: one may still be on its way to b or c when the run below starts.
    until(lambda: get(a, "/publish", topic="news", tag="probe")["ok"] == 3,
          what="3 subscribers seen")
    assert get(a, "/publish", topic="news", n="200", tag="run")["ok"] == 3
    assert get(c, "/publish", topic="news", n="50", tag="run")["ok"] == 3  # from the ASGI node
    for s in (a, b, c):
        got = []

        def drained():
            got.extend(m for m in get(s, "/sub_drain", topic="news")["ok"] if m["tag"] == "run")
            return len(got) >= 250

        try:
            until(drained, what="250 messages on %s" % s.cmd[-1])
        except AssertionError:
            raise AssertionError("%s got %d: %r" % (s.cmd[-1], len(got), [
                (m["from"], m["seq"]) for m in got][:300]))
        for sender, n in (("a@rpc", 200), ("c@rpc", 50)):
            seqs = [m["seq"] for m in got if m["from"] == sender]
            assert seqs == list(range(n)), (sender, seqs[:20])
    # a pattern subscriber counts too
    get(b, "/sub_open", topic="ne*")
    until(lambda: get(a, "/publish", topic="news")["ok"] == 4, what="pattern counted")


def test_a_stopped_node_is_bounded_oldest_dropped(server):
    # 1 s probes: a 2 s stop is not long enough to be declared dead
    extra = ["--cluster-link-queue", "16"]
    a = node(server, "a@rpc", extra=extra, probe="1s")
    b = node(server, "b@rpc", [a.seed], extra=extra, probe="1s")
    until(lambda: get(a, "/nodes")["nodes"] == ["b@rpc"], what="a sees b")
    get(b, "/sub_open", topic="firehose", queue="100000")
    until(lambda: get(a, "/publish", topic="firehose")["ok"] == 1, what="b's subscription")
    os.killpg(b.pid, signal.SIGSTOP)  # the whole node: its worker process runs the cluster
    try:
        r = get(a, "/publish", topic="firehose", n="300", size=str(200 << 10))
        assert r["ok"] == 1
        assert r["secs"] < 10, r  # publish never waits for the stopped node
        st = get(a, "/stats")["ok"]
        assert st["publish_dropped"] > 0, st
    finally:
        os.killpg(b.pid, signal.SIGCONT)
    # b gets the newest ones, in order, and the link still works
    got = []
    until(lambda: got.extend(get(b, "/sub_drain", topic="firehose")["ok"]) or
          any(m["seq"] == 299 for m in got), what="the last message reaches b")
    seqs = [m["seq"] for m in got if m["seq"] > 0 or len(got) == 1]
    assert seqs == sorted(seqs) and len(seqs) < 300, seqs[:20]
    assert get(a, "/rpc", node="b@rpc", fn="echo", args=[1])["ok"] == ["b@rpc", [1]]
