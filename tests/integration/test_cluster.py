"""test_cluster.py: real hornbeam-uring processes form a cluster on loopback ports.

Three nodes join through a seed (numeric, and a host name), see each other, see a kill -9 as
"dead" and a SIGTERM as "leave"; a node with a wrong cookie is refused with a log line naming
it. SWIM runs with a 200 ms probe interval (cluster_probe_interval) so this takes seconds.
Membership is read from the nodes' logs ("cluster: join NAME ...") and, from Python, through
nodes() and the "hornbeam:nodes" topic (apps/api_wsgi.py). Calls and publishes across nodes:
test_cluster_rpc.py.
"""
import os
import signal
import time

from hbtest import free_port

COOKIE = "integration-cookie"


def node(server, name, seeds=(), cookie=COOKIE, port=None):
    port = port or free_port()
    args = ["--node-name", name, "--cluster-enabled",
            "--cluster-bind", "127.0.0.1:%d" % port,
            "--cluster-probe-interval", "200ms", "--cluster-probe-timeout", "100ms"]
    for s in seeds:
        args += ["--cluster-seeds", s]
    s = server("wsgi_apps:app", *args, env={"HORNBEAM_CLUSTER_COOKIE": cookie})
    s.cluster_port = port
    return s


def wait_log(s, text, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in s.stderr():
            return True
        time.sleep(0.05)
    return False


def test_three_nodes_join_see_kill_and_leave(server):
    n0 = node(server, "n0@it")
    seed = "127.0.0.1:%d" % n0.cluster_port
    n1 = node(server, "n1@it", [seed])
    n2 = node(server, "n2@it", ["localhost:%d" % n0.cluster_port])
    for s, others in ((n0, ("n1@it", "n2@it")), (n1, ("n0@it", "n2@it")),
                      (n2, ("n0@it", "n1@it"))):
        for o in others:
            assert wait_log(s, "cluster: join %s" % o), "%s never saw %s\n%s" % (
                s.cmd, o, s.stderr()[-3000:])
    # kill -9: the others declare it dead (not left)
    server.servers.remove(n2)
    os.killpg(n2.pid, signal.SIGKILL)  # the whole node: master and worker process
    n2.wait_exit(5)
    n2.stop()
    t0 = time.monotonic()
    for s in (n0, n1):
        assert wait_log(s, "cluster: dead n2@it", 15.0), s.stderr()[-3000:]
    detect = time.monotonic() - t0
    assert detect < 10.0, "detection took %.1fs" % detect
    # SIGTERM: a graceful leave, seen as such
    assert n1.stop() == 0
    assert wait_log(n0, "cluster: leave n1@it", 3.0), n0.stderr()[-3000:]
    assert "cluster: dead n1@it" not in n0.stderr()


def test_wrong_cookie_is_refused(server):
    n0 = node(server, "n0@it")
    seed = "127.0.0.1:%d" % n0.cluster_port
    n1 = node(server, "n1@it", [seed])
    bad = node(server, "intruder@it", [seed], cookie="not-the-cookie")
    assert wait_log(n0, "cluster: join n1@it")
    assert wait_log(n0, "intruder@it (unverified)", 10.0), n0.stderr()[-3000:]
    assert "peer's proof does not match our cookie" in n0.stderr()
    time.sleep(1.0)
    assert "cluster: join intruder@it" not in n0.stderr()
    assert "cluster: join intruder@it" not in n1.stderr()
    assert "cluster: join" not in bad.stderr()


def test_cluster_needs_a_cookie(server, tmp_path):
    from hbtest import run_binary
    r = run_binary(["wsgi_apps:app", "--cluster-enabled"])
    assert r.returncode == 2
    assert b"HORNBEAM_CLUSTER_COOKIE" in r.stderr
    cookie = tmp_path / "cookie"
    cookie.write_text("from-a-file\n")
    port = free_port()
    s = server("wsgi_apps:app", "--node-name", "f@it", "--cluster-enabled",
               "--cluster-bind", "127.0.0.1:%d" % port, "--cluster-cookie-file", str(cookie))
    assert s.alive()


def _get(s, path):
    from hbtest import http
    r = http(s.port, "GET", path, [], b"", timeout=10)
    assert r.status == 200, r
    return r.json()


def _api_node(server, name, seeds=()):
    port = free_port()
    args = ["--node-name", name, "--cluster-enabled", "--cluster-bind", "127.0.0.1:%d" % port,
            "--cluster-probe-interval", "200ms", "--cluster-probe-timeout", "100ms"]
    for s in seeds:
        args += ["--cluster-seeds", s]
    s = server("api_wsgi:app", *args, env={"HORNBEAM_CLUSTER_COOKIE": COOKIE})
    s.cluster_port = port
    return s


def _wait_nodes(s, want, timeout=10.0):
    end = time.monotonic() + timeout
    got = None
    while time.monotonic() < end:
        got = _get(s, "/node")["nodes"]
        if got == want:
            return got
        time.sleep(0.05)
    return got


def test_nodes_and_the_hornbeam_nodes_topic(server):
    """Python sees the cluster: nodes() lists the live others, hornbeam:nodes carries events."""
    n0 = _api_node(server, "a0@it")
    _get(n0, "/sub_open?topic=hornbeam:nodes")
    seed = "127.0.0.1:%d" % n0.cluster_port
    n1 = _api_node(server, "a1@it", [seed])
    n2 = _api_node(server, "a2@it", [seed])
    assert _wait_nodes(n0, ["a1@it", "a2@it"]) == ["a1@it", "a2@it"]
    assert _wait_nodes(n1, ["a0@it", "a2@it"]) == ["a0@it", "a2@it"]
    assert _get(n0, "/node")["node"] == "a0@it"
    server.servers.remove(n2)
    os.killpg(n2.pid, signal.SIGKILL)  # the whole node: master and worker process
    n2.wait_exit(5)
    n2.stop()
    assert _wait_nodes(n0, ["a1@it"], 15.0) == ["a1@it"]
    assert n1.stop() == 0
    assert _wait_nodes(n0, [], 5.0) == []
    got = _get(n0, "/sub_drain?topic=hornbeam:nodes")["got"]
    assert sorted(got[:2], key=lambda e: e["node"]) == [
        {"event": "join", "node": "a1@it"}, {"event": "join", "node": "a2@it"}], got
    assert got[2:] == [{"event": "dead", "node": "a2@it"}, {"event": "leave", "node": "a1@it"}], got
