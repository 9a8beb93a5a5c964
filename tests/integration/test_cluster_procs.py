"""test_cluster_procs.py: the cluster from and to every worker process of a node that runs
processes = 2 or 3 (the cluster itself runs in one of them, the hub; the process bus carries the
rest).

Node b runs two worker processes, node a one. A function registered only in b's other process
(not the one running the cluster) is callable from a with call(); rpc_call of module:function
from a lands on both of b's processes; a call running in that other process when it is killed
ends at once with an error naming the loss, not at the caller's timeout.

With three processes on b (an ASGI app): nodes(), rpc_call, arpc_call, rpc_cast, call and cast
of a name registered on a, and their errors (NodeNotConnected, TimeoutError, RemoteError) work
from each of b's processes; publishes from a reach subscribers in all three and a's count says
so; a publish from a process that is not the hub reaches a's subscriber in order with the total
count; a call from such a process ends NodeDown at once when the hub is killed, and the
replacement hub's membership events (hornbeam:nodes) and calls work there again.

With a cluster_member_names_size too small for a's name, b's other process's nodes() cannot
list a, but its calls still go to the hub, which decides (and warns naming the key).
Nodes run apps/cluster_apps.py; helpers are test_cluster_rpc.py's.
"""
import os
import signal
import threading
import time

from sockowner import listening_pid
from test_cluster_rpc import get, node, until


def _cluster_pid(s, pids):
    """Which of s's worker processes runs its cluster: the one listening on the cluster port."""
    return listening_pid(s.cluster_port, pids)


def _procs(server, n, app="cluster_apps:wsgi", a_name="a@procs", b_extra=()):
    # a's graceful stop does not wait out the long call the last test leaves running there
    a = node(server, a_name, extra=("--graceful-timeout", "1"))
    b = node(server, "b@procs", [a.seed], app=app, extra=("--processes", str(n)) + b_extra)
    until(lambda: get(a, "/nodes")["nodes"] == ["b@procs"], what="a sees b")
    pids = until(lambda: len(b.worker_pids()) == n and b.worker_pids(), what="b's processes")
    cluster_pid = until(lambda: _cluster_pid(b, pids), what="b's cluster process")
    return a, b, pids, cluster_pid


def _procs_pair(server):
    a, b, pids, cluster_pid = _procs(server, 2)
    other_pid = [p for p in pids if p != cluster_pid][0]
    return a, b, cluster_pid, other_pid


def on(s, pid, path, **q):
    """A request run by s's worker process pid (requests land on any process: retry)."""
    for _ in range(300):
        r = get(s, path, pid=str(pid), **q)
        if "elsewhere" not in r:
            return r
    raise AssertionError("no request landed on process %d" % pid)


def _register_in(b, pid, name, fn):
    """Registers name in b's process pid only (requests land on either process: retry)."""
    until(lambda: get(b, "/register", name=name, fn=fn, pid=str(pid))["ok"], 20.0,
          "a request on b's process %d" % pid)


def test_calls_reach_both_processes_of_the_other_node(server):
    a, b, cluster_pid, other_pid = _procs_pair(server)
    _register_in(b, other_pid, "only_in_other", "where")
    # the name is announced to a (b's bus table, not just the cluster process's registry)
    r = until(lambda: "ok" in (x := get(a, "/call", name="only_in_other", args=["hi"])) and x,
              15.0, "a calls only_in_other")
    assert r["ok"] == ["b@procs", other_pid, ["hi"]], r
    # module:function calls spread over both processes (round robin)
    landed = set()
    for i in range(40):
        r = get(a, "/rpc", node="b@procs", fn="where", args=[i])
        assert r["ok"][0] == "b@procs" and r["ok"][2] == [i], r
        landed.add(r["ok"][1])
        if landed == {cluster_pid, other_pid}:
            break
    assert landed == {cluster_pid, other_pid}, landed
    # a cast to module:function runs too, whichever process takes it
    for i in range(4):
        assert get(a, "/cast", node="b@procs", fn="remember",
                   args=["pcast-%d" % i, i]) == {"ok": None}
    for i in range(4):
        until(lambda: get(b, "/state", key="pcast-%d" % i)["ok"] == i, what="cast %d ran" % i)
    # (only the cluster's process has its counters: ask until a request lands there)
    until(lambda: get(b, "/stats")["ok"].get("calls_served", 0) >= 7, what="b's calls_served")


def test_call_in_a_killed_process_fails_fast(server):
    a, b, cluster_pid, other_pid = _procs_pair(server)
    _register_in(b, other_pid, "nap_in_other", "sleep")
    until(lambda: get(a, "/call", name="nap_in_other", args=[0], timeout="3000").get("ok")
          == "b@procs", 15.0, "a calls nap_in_other")
    out = {}

    def call():
        t0 = time.monotonic()
        out.update(get(a, "/call", name="nap_in_other", args=[20], timeout="25000",
                       http_timeout=40))
        out["took"] = time.monotonic() - t0
    t = threading.Thread(target=call)
    t.start()
    time.sleep(1.0)  # the call is running in other_pid's worker
    t_kill = time.monotonic()
    os.kill(other_pid, signal.SIGKILL)
    t.join(30)
    assert not t.is_alive()
    assert out.get("error") == "RemoteError" and "lost" in out.get("msg", ""), out
    assert time.monotonic() - t_kill < 8.0, out  # not the 20 s sleep nor the 25 s timeout
    # the node still serves: module:function calls keep working (the master replaced the process)
    r = until(lambda: "ok" in (x := get(a, "/rpc", node="b@procs", fn="where", args=[1])) and x,
              15.0, "rpc_call after the kill")
    assert r["ok"][0] == "b@procs"


def _drain(s, pid, topic, got):
    """Adds what s's process pid's subscriber to topic received since the last drain."""
    r = on(s, pid, "/sub_drain", topic=topic) if pid else get(s, "/sub_drain", topic=topic)
    got.extend(r["ok"])
    return got


def test_calls_and_publishes_from_and_to_every_process(server):
    a, b, pids, hub = _procs(server, 3, app="cluster_apps:asgi")
    others = [p for p in pids if p != hub]
    get(a, "/register", name="double_on_a", fn="double")
    for pid in pids:
        until(lambda: on(b, pid, "/nodes")["nodes"] == ["a@procs"], what="nodes() in %d" % pid)
        r = on(b, pid, "/rpc", node="a@procs", fn="where", args=[pid])
        assert r["ok"][0] == "a@procs" and r["ok"][2] == [pid], r
        r = on(b, pid, "/arpc", node="a@procs", fn="double", args=[pid])
        assert r == {"ok": ["a@procs", 2 * pid]}, r
        # the errors process 0 gives
        r = on(b, pid, "/rpc", node="nobody@procs", fn="echo")
        assert r["error"] == "NodeNotConnected", r
        r = on(b, pid, "/rpc", node="a@procs", fn="sleep", args=[2], timeout="300")
        assert r["error"] == "TimeoutError", r
        r = on(b, pid, "/rpc", node="a@procs", fn="boom", args=["p%d" % pid])
        assert r["error"] == "RemoteError" and "boom: p%d" % pid in r["msg"], r
        # a name registered on a (its table reaches b, then the hub answers for the process)
        r = until(lambda: "ok" in (x := on(b, pid, "/call", name="double_on_a", args=[pid]))
                  and x, what="call() from %d" % pid)
        assert r["ok"] == ["a@procs", 2 * pid], r
        r = on(b, pid, "/call", name="nobody_registered_this", args=[])
        assert r["error"] == "FunctionNotRegistered", r
        assert on(b, pid, "/cast", node="a@procs", fn="remember",
                  args=["cast-%d" % pid, pid]) == {"ok": None}
        assert on(b, pid, "/ccast", name="double_on_a", args=[1]) == {"ok": None}
        until(lambda: get(a, "/state", key="cast-%d" % pid)["ok"] == pid, what="cast ran")
    # every process's stats are the node's (the hub's counters)
    assert on(b, others[0], "/stats")["ok"]["calls_sent"] >= 3 * 5, "calls_sent"

    # a subscriber in each of b's processes and one on a: a publish from a counts 4
    for pid in pids:
        on(b, pid, "/sub_open", topic="fan")
    get(a, "/sub_open", topic="fan")
    until(lambda: get(a, "/publish", topic="fan", tag="probe")["ok"] == 4, 15.0,
          "a counts b's three subscribers")
    assert get(a, "/publish", topic="fan", n=60, tag="run")["ok"] == 4
    for pid in pids:
        got = []
        until(lambda: len([m for m in _drain(b, pid, "fan", got) if m["tag"] == "run"]) >= 60,
              10.0, "60 publishes from a in process %d (hub %d; got %r)" % (pid, hub, got))
        assert [m["seq"] for m in got if m["tag"] == "run"] == list(range(60)), (pid, got)
    # a publish from a process that is not the hub: the same total, in order on a
    r = on(b, others[0], "/publish", topic="fan", n=60, tag="from-b")
    assert r["ok"] == 4, r
    got = []
    until(lambda: len([m for m in _drain(a, None, "fan", got) if m["tag"] == "from-b"]) >= 60,
          10.0, "60 publishes from b's process %d on a" % others[0])
    assert [m["seq"] for m in got if m["tag"] == "from-b"] == list(range(60)), got

    # a call from a process whose hub dies ends at once (NodeDown), not at its timeout
    on(b, others[0], "/sub_open", topic="hornbeam:nodes")
    # (a's worker is busy with the call and others[0]'s loop waits in it: others[1] hears)
    on(b, others[1], "/sub_open", topic="napping")
    until(lambda: get(a, "/publish", topic="napping", tag="probe")["ok"] == 1, what="napping")
    out = {}

    def call():
        out.update(on(b, others[0], "/rpc", node="a@procs", fn="nap", args=["napping", 20],
                      timeout="25000", http_timeout=40))
    t = threading.Thread(target=call)
    t.start()
    nap = []
    until(lambda: {"napping": True} in _drain(b, others[1], "napping", nap), 15.0,
          "the call running on a")
    t_kill = time.monotonic()
    os.kill(hub, signal.SIGKILL)
    t.join(30)
    assert not t.is_alive()
    assert out.get("error") == "NodeDown" and "exited" in out.get("msg", ""), out
    assert time.monotonic() - t_kill < 8.0, out
    # the replacement hub runs the node again: its membership events reach the other
    # processes' subscribers, and their calls go through it
    ev = []
    until(lambda: {"event": "join", "node": "a@procs"} in _drain(b, others[0], "hornbeam:nodes",
                                                                 ev), 20.0, "join seen in %d" % others[0])
    r = until(lambda: "ok" in (x := on(b, others[0], "/rpc", node="a@procs", fn="where",
                                       args=[1])) and x, 15.0, "rpc_call through the new hub")
    assert r["ok"][0] == "a@procs", r


def test_member_names_that_do_not_fit(server):
    """cluster_member_names_size smaller than a's name: the other process's nodes() cannot list
    a, yet its calls go to the hub, which decides (docs/configuration.md)."""
    long_name = "a-%s@procs" % ("x" * 40)
    a, b, pids, hub = _procs(server, 2, a_name=long_name,
                             b_extra=("--cluster-member-names-size", "16"))
    other = [p for p in pids if p != hub][0]
    until(lambda: on(b, hub, "/nodes")["nodes"] == [long_name], what="the hub lists a")
    r = until(lambda: "ok" in (x := on(b, other, "/rpc", node=long_name, fn="where", args=[1]))
              and x, what="rpc_call to a from the other process")
    assert r["ok"][0] == long_name, r
    assert on(b, other, "/nodes")["nodes"] == [], "a's name does not fit in 16 bytes"
    r = on(b, other, "/rpc", node="nobody@procs", fn="echo")
    assert r["error"] == "NodeDown" and "not connected" in r["msg"], r
    assert "(cluster_member_names_size)" in b.stderr(), b.stderr()[-2000:]
