"""hornbeam_erlang / hornbeam_ml inside the server (2 worker interpreters): shared state, limits,
pub/sub across workers, registered functions running in the registering interpreter, the ML
cache, [functions] from the config file; and the in-process fallbacks under plain python."""
import json
import subprocess
import threading
import time
import uuid
from unittest.mock import ANY

import pytest
import requests

from hbtest import APPS, REPO, http


@pytest.fixture(scope="module")
def api(module_server_factory):
    return module_server_factory("api_wsgi:app", "--workers", "2", "--threads", "1")


@pytest.fixture
def srv(api):
    api.assert_alive()
    yield api
    api.assert_alive()


def uniq(prefix="k"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


NOBODY = object()


def call(srv, path, body=NOBODY, status=200):
    method = "POST" if body is not NOBODY else "GET"
    data = json.dumps(body).encode() if body is not NOBODY else b""
    r = http(srv.port, method, path, [("Content-Type", "application/json")] if data else [], data,
             timeout=30)
    assert r.status == status, r
    return r.json()


def on_other_worker(srv, path, than, body=NOBODY, tries=60):
    """Repeats a request until a worker other than `than` (an interpreter id) serves it."""
    for _ in range(tries):
        out = call(srv, path, body)
        if out["who"]["interp"] != than:
            return out
    pytest.fail("the second worker never served %s" % path)


# -- shared state --------------------------------------------------------------------------

def test_incr_4000_concurrent_gives_exactly_1_to_4000(srv):
    key = uniq("counter")
    values, interps, errors = [], set(), []
    lock = threading.Lock()

    def client():
        try:
            with requests.Session() as s:
                for _ in range(500):
                    r = s.get("http://127.0.0.1:%d/incr?key=%s" % (srv.port, key), timeout=30)
                    assert r.status_code == 200, r.text
                    out = r.json()
                    with lock:
                        values.append(out["value"])
                        interps.add(out["who"]["interp"])
        except Exception as e:  # reported below, with the count
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert sorted(values) == list(range(1, 4001))
    assert len(interps) == 2, "both workers should have served increments: %r" % interps
    assert call(srv, "/get?key=" + key)["value"] == 4000


def test_decr_and_delta(srv):
    key = uniq()
    assert call(srv, "/incr?key=%s&delta=10" % key)["value"] == 10
    assert call(srv, "/decr?key=%s&delta=3" % key)["value"] == 7
    assert call(srv, "/decr?key=%s" % key)["value"] == 6


VALUES = [
    None, True, False, 0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 200, -(3 ** 90), 1.5, -0.0, 1e308,
    "", "héllo \u2603 \U0001F600", {"__bytes__": "00ff10"}, [], [1, [2, [3, None]]],
    {"__tuple__": [1, "two", {"__tuple__": []}]}, {"a": {"b": [1, 2.5, "c"]}, "": None},
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_value_set_by_one_worker_reads_back_identically_in_the_other(srv, value):
    key = uniq("val")
    first = call(srv, "/set?key=" + key, value)
    out = on_other_worker(srv, "/get?key=" + key, first["who"]["interp"])
    assert out["value"] == value
    if isinstance(value, float):
        assert repr(out["value"]) == repr(value)


def test_str_and_bytes_keys_differ(srv):
    key = uniq()
    call(srv, "/set?key=" + key, "as str")
    call(srv, "/set?key=%s&bytes=1" % key, "as bytes")
    assert call(srv, "/get?key=" + key)["value"] == "as str"
    assert call(srv, "/get?key=%s&bytes=1" % key)["value"] == "as bytes"
    assert call(srv, "/delete?key=%s&bytes=1" % key)["deleted"] is True
    assert call(srv, "/get?key=" + key)["value"] == "as str"


def test_keys_get_multi_delete(srv):
    p = uniq("pfx")
    for i in range(5):
        call(srv, "/set?key=%s:%d" % (p, i), i * 10)
    call(srv, "/set?key=%s:b&bytes=1" % p, "bytes key")
    assert call(srv, "/keys?prefix=%s:" % p)["keys"] == ["%s:%d" % (p, i) for i in range(5)]
    m = call(srv, "/multi?k=%s:1&k=%s:3&k=%s:missing" % (p, p, p))["values"]
    assert m == {"%s:1" % p: 10, "%s:3" % p: 30}
    assert call(srv, "/delete?key=%s:1" % p)["deleted"] is True
    assert call(srv, "/delete?key=%s:1" % p)["deleted"] is False
    assert call(srv, "/get?key=%s:1" % p)["value"] == "__missing__"
    assert len(call(srv, "/keys?prefix=%s:" % p)["keys"]) == 4
    assert "%s:2" % p in call(srv, "/keys")["keys"]
    assert (p + ":b").encode().hex() in call(srv, "/keys")["bytes_keys"]
    assert call(srv, "/keys?bytes=1&prefix=%s:" % p) == {
        "keys": [], "bytes_keys": [(p + ":b").encode().hex()], "who": ANY}


def test_4mib_bytes_value_in_both_workers(srv):
    key = uniq("big")
    first = call(srv, "/setbytes?key=%s&size=%d" % (key, 4 << 20))
    seen = set()
    for _ in range(40):
        out = call(srv, "/getbytes?key=" + key)
        assert out["len"] == 4 << 20 and out["ok"], out
        seen.add(out["who"]["interp"])
        if len(seen) == 2:
            break
    assert len(seen) == 2 and first["who"]["interp"] in seen


@pytest.mark.parametrize("kind,name", [("set", "set"), ("object", "object"),
                                       ("complex", "complex"), ("nested", "frozenset")])
def test_unsupported_types_raise_typeerror_naming_the_type(srv, kind, name):
    out = call(srv, "/badtype?kind=" + kind, status=500)
    assert out["error"] == "TypeError"
    assert "'%s'" % name in out["message"], out


def test_limits_raise_clear_exceptions(srv):
    out = call(srv, "/limits?value=%d" % (65 << 20))
    assert out["key"][:2] == ["StateLimitError", True] and "state_max_key_size" in out["key"][2]
    assert out["value"][:2] == ["StateLimitError", True] and "state_max_value_size" in out["value"][2]
    assert out["incr"][0] == "TypeError" and "not an int" in out["incr"][1]
    assert out["overflow"][0] == "OverflowError"


def test_state_full_raises_and_recovers(server):
    s = server("api_wsgi:app", "--workers", "2", "--state-max-bytes", str(8 << 20))
    out = call(s, "/fill")
    assert out["error"] == "StateFullError" and out["memory"] is True, out
    assert 1 <= out["stored"] < 8
    call(s, "/unfill")
    call(s, "/setbytes?key=after&size=%d" % (1 << 20))
    assert call(s, "/getbytes?key=after")["ok"]


def test_stats_are_exported(srv):
    st = call(srv, "/stats")["stats"]
    for k in ("entries", "bytes_used", "max_bytes", "gets", "sets", "incrs", "pubsub_published"):
        assert k in st
    assert st["max_bytes"] == 256 << 20


# -- pub/sub -------------------------------------------------------------------------------
# A worker blocked in a request may still get the next request queued behind it, so the
# subscriber never blocks: /sub_open subscribes and returns, /sub_drain (retried until the
# subscribing worker serves it) takes what was queued.

def _open(srv, topic, queue=None):
    q = "&queue=%d" % queue if queue else ""
    return call(srv, "/sub_open?topic=%s%s" % (topic, q))["who"]["interp"]


def _drain(srv, topic):
    for _ in range(60):
        out = call(srv, "/sub_drain?topic=" + topic)
        if out["here"]:
            return out
    pytest.fail("the subscribing worker never served /sub_drain")


def test_publish_reaches_a_subscriber_in_the_other_worker_in_order(srv):
    topic = uniq("topic")
    owner = _open(srv, topic)
    with requests.Session() as s:
        outs = [s.post("http://127.0.0.1:%d/publish?topic=%s" % (srv.port, topic),
                       json={"i": i}).json() for i in range(100)]
    assert [o["reached"] for o in outs] == [1] * 100
    assert any(o["who"]["interp"] != owner for o in outs), "no publish came from the other worker"
    out = _drain(srv, topic)
    assert [m["i"] for m in out["got"]] == list(range(100))
    assert out["dropped"] == 0


def test_async_for_subscriber(srv):
    out = call(srv, "/async_collect?topic=%s&n=30" % uniq("atopic"))
    assert out["got"] == [[i, "x" * i] for i in range(30)]
    assert out["closed"] is True


def test_publish_without_subscribers_reaches_none(srv):
    assert call(srv, "/publish?topic=%s&msg=x" % uniq("nobody"))["reached"] == 0


def test_slow_subscriber_stays_bounded_and_counts_drops(srv):
    topic = uniq("slow")
    _open(srv, topic, queue=5)
    with requests.Session() as s:
        for i in range(200):
            r = s.get("http://127.0.0.1:%d/publish?topic=%s&msg=m%d" % (srv.port, topic, i))
            assert r.json()["reached"] == 1
    out = _drain(srv, topic)
    assert out["queue_size"] == 5
    assert out["got"] == ["m%d" % i for i in range(195, 200)], out["got"]
    assert out["dropped"] == 195


def test_closed_subscription_is_not_reached(srv):
    topic = uniq("closed")
    _open(srv, topic)
    assert call(srv, "/publish?topic=%s&msg=a" % topic)["reached"] == 1
    _drain(srv, topic)  # closes it
    assert call(srv, "/publish?topic=%s&msg=b" % topic)["reached"] == 0


# -- registered functions ------------------------------------------------------------------

def _register_on_some_worker(srv, name, fn):
    return call(srv, "/register?name=%s&fn=%s" % (name, fn))["who"]["interp"]


def test_call_runs_in_the_registering_interpreter(srv):
    name = uniq("fn")
    owner = _register_on_some_worker(srv, name, "whoami")
    out = on_other_worker(srv, "/call?name=" + name, owner, body=[1, "two", {"__bytes__": "03"}])
    assert out["result"]["who"]["interp"] == owner
    assert out["result"]["args"] == [1, "two", {"__bytes__": "03"}]
    # From the owner itself it runs directly, in the same interpreter.
    for _ in range(40):
        o = call(srv, "/call?name=" + name, [])
        if o["who"]["interp"] == owner:
            assert o["result"]["who"]["interp"] == owner
            break


def test_call_exception_comes_back_as_runtimeerror_with_traceback(srv):
    name = uniq("boom")
    owner = _register_on_some_worker(srv, name, "explode")
    out = on_other_worker(srv, "/call?name=" + name, owner, body=["hi"])
    assert out["error"] == "RuntimeError"
    assert "Traceback" in out["message"] and "ValueError: exploded: hi" in out["message"]


def test_register_again_replaces_and_unregister(srv):
    name = uniq("re")
    _register_on_some_worker(srv, name, "whoami")
    _register_on_some_worker(srv, name, "add")
    assert call(srv, "/call?name=" + name, [2, 3])["result"] == 5
    assert call(srv, "/unregister?name=" + name)["removed"] is True
    out = call(srv, "/call?name=" + name, [2, 3])
    assert out["error"] == "FunctionNotRegistered"


def test_call_timeout(srv):
    name = uniq("slow")
    owner = _register_on_some_worker(srv, name, "slow")
    t0 = time.monotonic()
    out = on_other_worker(srv, "/call?name=%s&timeout_ms=200" % name, owner, body=[1.0])
    assert out["error"] == "TimeoutError", out
    assert time.monotonic() - t0 < 10


def test_workers_calling_each_other_time_out_instead_of_hanging(srv):
    """B calls ping_a (in A), which calls ping_b (in B) while B is blocked in its call."""
    a_name, b_name = uniq("ping_a"), uniq("ping_b")
    a = _register_on_some_worker(srv, a_name, "ping_back")
    for _ in range(60):
        out = call(srv, "/register?name=%s&fn=whoami" % b_name)
        if out["who"]["interp"] != a:
            break
    else:
        pytest.fail("could not register on the other worker")
    t0 = time.monotonic()
    out = on_other_worker(srv, "/call?name=%s&timeout_ms=8000" % a_name, a, body=[b_name])
    assert out["error"] == "RuntimeError" and "timed out" in out["message"], out
    assert time.monotonic() - t0 < 8
    call(srv, "/who")  # both workers still serve


def test_cast_runs_later_in_the_owner(srv):
    name, key = uniq("bump"), uniq("bumped")
    owner = _register_on_some_worker(srv, name, "bump")
    casts = 0
    while True:  # until another worker sent one (the owner's own casts count too)
        casts += 1
        if call(srv, "/cast?name=" + name, [key, 7])["who"]["interp"] != owner:
            break
        assert casts < 60
    deadline = time.monotonic() + 5
    while call(srv, "/get?key=" + key)["value"] != 7 * casts:
        assert time.monotonic() < deadline, "cast did not run"
        time.sleep(0.02)


def test_node_nodes_and_rpc(srv):
    out = call(srv, "/node")
    assert out["native"] is True and out["nodes"] == []
    assert out["node"].startswith("hornbeam@")
    assert call(srv, "/rpc?module=api_funcs&function=remote_add", [2, 40])["result"] == 42
    out = call(srv, "/rpc?node=other@host&module=os&function=getpid", [])
    assert out["error"] == "NodeNotConnected"
    assert "'other@host' is not connected" in out["message"]


def test_rpc_cast_failure_is_logged(srv):
    """Nobody waits for an rpc_cast: its exception goes to the error log, as a cast's does (it
    was dropped without a word before)."""
    tag = uniq("rpc")
    assert call(srv, "/rpc_cast?module=api_wsgi&function=explode", [tag]) is not None
    deadline = time.monotonic() + 5
    while "exploded: %s" % tag not in srv.stderr():
        assert time.monotonic() < deadline, "rpc_cast's exception was not logged:\n" + srv.stderr()[-3000:]
        call(srv, "/who")  # the job runs after a request
        time.sleep(0.05)
    assert "rpc_cast to 'api_wsgi:explode' failed" in srv.stderr()


def test_functions_from_the_config_file(server, tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "api_wsgi:app"\nworkers = 2\nnode_name = "api@test"\n\n'
                   '[functions]\ndouble = "api_funcs:double"\n')
    s = server(None, "--config", str(cfg), "--workers", "2")
    seen = set()
    for _ in range(40):
        out = call(s, "/call?name=double", [21])
        assert out["result"]["value"] == 42, out
        seen.add(out["who"]["interp"])
        owner = out["result"]["interp"]
        if len(seen) == 2:
            break
    assert len(seen) == 2
    assert call(s, "/node")["node"] == "api@test"
    assert owner in seen


def test_functions_config_errors(tmp_path):
    from hbtest import free_port, run_binary
    cfg = tmp_path / "bad.toml"
    cfg.write_text('app = "api_wsgi:app"\n[functions]\nx = "no_colon"\n')
    r = run_binary(["--config", cfg, "--pythonpath", APPS, "--bind", "127.0.0.1:%d" % free_port(), "--workers", "1"])
    err = (r.stderr + r.stdout).decode()
    assert r.returncode == 2 and "[functions] x" in err and ":3" in err, err
    cfg.write_text('app = "api_wsgi:app"\n[functions]\nx = "no_such_module_hb:f"\n')
    r = run_binary(["--config", cfg, "--pythonpath", APPS, "--bind", "127.0.0.1:%d" % free_port(), "--workers", "1"])
    err = (r.stderr + r.stdout).decode()
    assert r.returncode != 0 and "no_such_module_hb" in err, err


# -- hornbeam_ml ---------------------------------------------------------------------------

def test_ml_cache_hits_across_workers(srv):
    text = uniq("text")
    before = call(srv, "/get?key=model_runs")["value"]
    before = 0 if before == "__missing__" else before
    first = call(srv, "/ml?text=" + text)
    out = on_other_worker(srv, "/ml?text=" + text, first["who"]["interp"])
    assert out["embedding"] == first["embedding"]
    assert call(srv, "/get?key=model_runs")["value"] == before + 1
    st = out["stats"]
    assert st["hits"] >= 1 and 0 < st["hit_rate"] <= 1


def test_ml_cache_key_cannot_reach_the_counters(srv):
    """cache_key="__hits" (or __misses, __entries) is an entry like any other: hornbeam_ml's
    own counters live where no cache_key or cache_prefix can reach (bytes keys)."""
    prefix = uniq("p")
    for k in ("__hits", "__misses", "__entries"):
        out = call(srv, "/ml_key?text=a&key=%s&prefix=%s&max_entries=5" % (k, prefix))
        assert out["embedding"], out
    out = call(srv, "/ml_key?text=b&key=__hits&prefix=" + prefix)
    assert out["stats"] == {"hits": 1, "misses": 3, "hit_rate": 0.25}, out
    assert out["keys"] == sorted("%s:%s" % (prefix, k) for k in ("__hits", "__misses", "__entries"))
    cleared = call(srv, "/ml_clear?prefix=" + prefix)
    assert cleared["cleared"] == 6 and cleared["stats"] == {"hits": 0, "misses": 0, "hit_rate": 0.0}


def test_dropped_subscription_is_not_reached(srv):
    out = call(srv, "/sub_drop?topic=" + uniq("drop"))
    assert (out["before"], out["after"]) == (1, 0), out


# -- the fallbacks -------------------------------------------------------------------------

FALLBACK_SCRIPT = r'''
import asyncio, gc, sys, threading, time
import hornbeam_erlang as hb, hornbeam_ml as ml
assert hb.NATIVE is False
hb.state_set("a", [1, (2, 3), {"x": b"y"}])
assert hb.state_get("a") == [1, (2, 3), {"x": b"y"}] and hb.state_get(b"a") is None
assert [hb.state_incr("c"), hb.state_incr("c", 5), hb.state_decr("c")] == [1, 6, 5]
try:
    hb.state_set("k", {1})
    raise SystemExit("no TypeError")
except TypeError as e:
    assert "'set'" in str(e)
assert hb.state_keys("a") == ["a"] and hb.state_get_multi(["a", "zz"]) == {"a": [1, (2, 3), {"x": b"y"}]}
assert hb.state_delete("a") is True and hb.state_delete("a") is False
s = hb.subscribe("t", queue_size=3)
assert [hb.publish("t", i) for i in range(5)] == [1] * 5
assert s.dropped == 2 and [s.get(), s.get(), s.get()] == [2, 3, 4]
try:
    s.get(timeout=0.01)
    raise SystemExit("no TimeoutError")
except TimeoutError:
    pass
async def main():
    sub = hb.subscribe("x*")
    got = []
    async def pub():
        await asyncio.sleep(0.01)
        assert hb.publish("x1", "hello") == 1
        threading.Thread(target=hb.publish, args=("x2", "from a thread")).start()
        await asyncio.sleep(0.1)
        sub.close()
    asyncio.ensure_future(pub())
    async for m in sub:
        got.append(m)
    assert got == ["hello", "from a thread"], got
asyncio.run(main())
hb.register_function("f", lambda a, b: a + b)
assert hb.call("f", 2, 3) == 5
def bad():
    raise ValueError("boom")
hb.register_function("bad", bad)
try:
    hb.call("bad")
    raise SystemExit("no RuntimeError")
except RuntimeError as e:
    assert "ValueError: boom" in str(e)
try:
    hb.call("nope")
    raise SystemExit("no FunctionNotRegistered")
except hb.FunctionNotRegistered as e:
    assert "nope" in str(e), e
assert hb.node().startswith("hornbeam@") and hb.nodes() == []
assert hb.rpc_call(hb.node(), "os.path", "join", ["a", "b"]) == "a/b"
try:
    hb.rpc_call("x@y", "os", "getpid", [])
    raise SystemExit("no NodeNotConnected")
except hb.NodeNotConnected as e:
    assert "not connected" in str(e)
runs = []
def model(x):
    runs.append(x)
    return [len(x), 0.5]
assert ml.cached_inference(model, "hi") == [2, 0.5]
assert ml.cached_inference(model, "hi") == [2, 0.5] and len(runs) == 1
assert ml.cached_inference(model, {"b": 1, "a": [1.0, "x"]}) == ml.cached_inference(model, {"a": [1.0, "x"], "b": 1})
assert len(runs) == 2
assert ml.cache_stats() == {"hits": 2, "misses": 2, "hit_rate": 0.5}
n = len(runs)
assert ml.cached_inference(model, "ttl", ttl=0) == [3, 0.5] and len(runs) == n + 1
time.sleep(0.01)
assert ml.cached_inference(model, "ttl", ttl=0) == [3, 0.5] and len(runs) == n + 2, "ttl=0 did not recompute"
assert ml.cached_inference(model, "ttl", ttl=60) == [3, 0.5] and len(runs) == n + 2, "ttl=60 recomputed"
assert ml.cached_inference(model, "ttl") == [3, 0.5] and len(runs) == n + 2, "no ttl recomputed"
time.sleep(0.05)
assert ml.cached_inference(model, "ttl", ttl=0.02) == [3, 0.5] and len(runs) == n + 3, "an expired entry was a hit"
for i in range(30):
    ml.cached_inference(model, "e%d" % i, cache_prefix="cap", max_entries=10)
assert len(hb.state_keys("cap:")) <= 11
# A dropped Subscription (no close()) unsubscribes, as the native module's does.
s3 = hb.subscribe("dropped")
assert hb.publish("dropped", 1) == 1 and hb.state_stats()["pubsub_subscribers"] >= 1
n_subs = hb.state_stats()["pubsub_subscribers"]
del s3
assert hb.publish("dropped", 2) == 0, "a dropped subscription is still reached"
assert hb.state_stats()["pubsub_subscribers"] == n_subs - 1
class Holder:
    pass
h = Holder()
h.sub = hb.subscribe("cyc*")
h.me = h  # a reference cycle: only the cyclic GC frees it
assert hb.publish("cyc1", 1) == 1
del h
gc.collect()
assert hb.publish("cyc1", 2) == 0, "a subscription dropped in a cycle is still reached"
kept = hb.subscribe("kept")
gc.collect()
assert hb.publish("kept", 1) == 1 and kept.get_nowait() == 1
# cache_key / cache_prefix cannot reach hornbeam_ml's own counters
for k in ("__hits", "__misses", "__entries"):
    assert ml.cached_inference(model, "a", cache_key=k, cache_prefix="ns", max_entries=5) == [1, 0.5]
assert ml.cached_inference(model, "b", cache_key="__hits", cache_prefix="ns") == [1, 0.5]
assert ml.cache_stats("ns") == {"hits": 1, "misses": 3, "hit_rate": 0.25}, ml.cache_stats("ns")
assert sorted(hb.state_keys("ns:")) == ["ns:__entries", "ns:__hits", "ns:__misses"]
assert ml.cached_inference(model, "c", cache_key="__hits") == [1, 0.5]   # default prefix "ml"
assert ml.cache_stats("ml")["hits"] >= 1 and isinstance(ml.cache_stats()["misses"], int)
assert ml.cache_clear("ns") == 6 and ml.cache_stats("ns") == {"hits": 0, "misses": 0, "hit_rate": 0.0}
print("fallback ok")
'''


FAKE_NUMPY = r'''
"""Just enough of numpy's ndarray for hornbeam_ml's hashing (the real one is not installed)."""
import struct


class dtype:
    def __init__(self, s):
        self.str = s
        self.hasobject = False


class ndarray:
    def __init__(self, values, dt="<f8"):
        self.values, self.dtype, self.shape = list(values), dtype(dt), (len(values),)

    def tobytes(self):
        return b"".join(struct.pack(self.dtype.str[0] + self.dtype.str[1:].replace("f8", "d").replace("i8", "q"), v)
                        for v in self.values)

    def tolist(self):
        return list(self.values)


def ascontiguousarray(a):
    return a
'''

NUMPY_SCRIPT = r'''
import numpy as np, hornbeam_ml as ml
runs = []
def model(x):
    runs.append(1)
    return np.ndarray([1.5, 2.5])
a, b, c = np.ndarray([1.0, 2.0]), np.ndarray([1.0, 2.0]), np.ndarray([1, 2], "<i8")
assert ml.make_cache_key(a) == ml.make_cache_key(b) != ml.make_cache_key(c)
first = ml.cached_inference(model, a)
assert isinstance(first, np.ndarray)            # the model's own result the first time
assert ml.cached_inference(model, b) == [1.5, 2.5] and len(runs) == 1   # then the stored list
ml.cached_inference(model, c)
assert len(runs) == 2
try:
    ml.cached_inference(model, object())
    raise SystemExit("no TypeError")
except TypeError as e:
    assert "cache_key" in str(e)
n = len(runs)
first = ml.cached_inference(model, object(), cache_key="explicit")
assert isinstance(first, np.ndarray) and first.tolist() == [1.5, 2.5] and len(runs) == n + 1
assert ml.cached_inference(model, object(), cache_key="explicit") == [1.5, 2.5] and len(runs) == n + 1
assert ml.cached_inference(model, object(), cache_key="other") is not None and len(runs) == n + 2
print("numpy ok")
'''


def test_ml_numpy_inputs_and_results_under_plain_python(tmp_path):
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text(FAKE_NUMPY)
    r = subprocess.run(["/usr/bin/python3", "-c", NUMPY_SCRIPT], cwd=str(tmp_path), capture_output=True,
                       timeout=60, env={"PYTHONPATH": "%s:%s" % (tmp_path, REPO / "python"),
                                        "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    assert b"numpy ok" in r.stdout


def test_fallback_modules_under_plain_python():
    r = subprocess.run(["/usr/bin/python3", "-c", FALLBACK_SCRIPT], cwd=str(APPS), capture_output=True,
                       timeout=60, env={"PYTHONPATH": str(REPO / "python"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    assert b"fallback ok" in r.stdout


# -- examples/embedding_service ------------------------------------------------------------

def test_embedding_service_example(server):
    from hbtest import EXAMPLES
    s = server("app:application", "--workers", "2", pythonpath=[EXAMPLES / "embedding_service"])
    texts = [uniq("t") for _ in range(3)]
    first = call(s, "/embed", {"texts": texts})
    assert len(first["embeddings"]) == 3 and first["model"]
    for _ in range(6):  # whichever worker answers, the same vectors, from the cache
        assert call(s, "/embed", {"texts": texts})["embeddings"] == first["embeddings"]
    m = call(s, "/metrics")
    assert m["cache"]["misses"] == 3 and m["cache"]["hits"] == 18, m
    assert call(s, "/embed", {"texts": "nope"}, status=400)["error"]
