"""test_cluster_procs.py: calls from another node reach every worker process of a node that
runs processes = 2 (the cluster itself runs in one of them; the process bus carries the rest).

Node b runs two worker processes, node a one. A function registered only in b's other process
(not the one running the cluster) is callable from a with call(); rpc_call of module:function
from a lands on both of b's processes; a call running in that other process when it is killed
ends at once with an error naming the loss, not at the caller's timeout. Nodes run
apps/cluster_apps.py; helpers are test_cluster_rpc.py's.
"""
import os
import signal
import threading
import time

from test_cluster_rpc import get, node, until


def _procs_pair(server):
    a = node(server, "a@procs")
    b = node(server, "b@procs", [a.seed], extra=("--processes", "2"))
    until(lambda: get(a, "/nodes")["nodes"] == ["b@procs"], what="a sees b")
    pids = until(lambda: len(b.worker_pids()) == 2 and b.worker_pids(), what="b's 2 processes")
    # which of b's processes runs the cluster: only there does nodes() list a (requests land on
    # either process, so ask until both answered)
    seen = {}

    def both():
        w = get(b, "/whoami")
        seen[w["pid"]] = w["nodes"]
        return len(seen) == 2 and ["a@procs"] in seen.values()
    until(both, 20.0, "requests on both of b's processes, one with the cluster")
    assert sorted(seen) == sorted(pids), (seen, pids)
    cluster_pid = [p for p, n in seen.items() if n == ["a@procs"]][0]
    other_pid = [p for p in pids if p != cluster_pid][0]
    return a, b, cluster_pid, other_pid


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
