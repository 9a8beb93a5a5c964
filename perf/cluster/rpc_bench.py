#!/usr/bin/env python3
"""perf/cluster/rpc_bench.py: rpc_call round trip between two hornbeam-uring nodes on loopback.

Starts node b (answers bench_app.echo) and node a (the callers: threads in its one worker),
joined through a cookie-authenticated cluster link, then asks a for runs with 1 and 64 callers
(and any --callers given): calls/s and the round-trip latency p50/p99 of rpc_call with a small
argument (--size bytes, 16 by default). Prints a Markdown table; --json writes the numbers.

    scripts/build.sh release
    /usr/bin/python3 perf/cluster/rpc_bench.py [--seconds 3] [--callers 1 64] [--json out.json]

--hop [--rounds 5] measures the process bus's extra hop instead: node a runs processes = 2 with
2 workers each (process 0 runs the cluster and is the bus's hub; process 1 reaches the cluster
through it), and each round runs, with each --callers count: rpc_call to b from a worker in
process 0 and from one in process 1, and call() of a function registered on a itself by another
worker, of the caller's own process (the baseline: no bus) or of the other process (both
directions). The configurations interleave within a round; the table gives each one's median
over the rounds, and the load average before and after.

Only the standard library. Both nodes share the machine with the callers: on 2 cores the
numbers measure the whole loop (Python caller, codec, two cluster threads, Python callee).
"""
import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
from sockowner import listening_pid  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=120):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return json.loads(r.read())


def start(binary, name, http, cport, seed, threads, log, extra=()):
    args = [binary, "bench_app:app", "--pythonpath", str(HERE), "--bind", "127.0.0.1:%d" % http,
            "--workers", "1", "--threads", str(threads), "--node-name", name,
            "--cluster-enabled", "--cluster-bind", "127.0.0.1:%d" % cport, "--log-level", "warning"]
    if seed:
        args += ["--cluster-seeds", "127.0.0.1:%d" % seed]
    args += list(extra)
    env = dict(os.environ, HORNBEAM_CLUSTER_COOKIE="bench-cookie",
               HORNBEAM_PYTHON_LIB=str(REPO / "python"))
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)


@contextlib.contextmanager
def two_nodes(binary, extra=lambda name: (), a_extra=(), info=None):
    """Node b (answers bench_app.echo, 8 threads) and node a (the callers, 2 threads), each with
    extra(its cert name: node2, node1) on its command line, a also with a_extra; yields a's HTTP
    port once a sees b (and fills info, when given, with a's Popen and cluster port). Both are
    stopped on the way out."""
    log = tempfile.TemporaryFile()
    ha, hb_, ca, cb = free_port(), free_port(), free_port(), free_port()
    b = start(binary, "b@bench", hb_, cb, None, 8, log, extra("node2"))
    na = start(binary, "a@bench", ha, ca, cb, 2, log, tuple(extra("node1")) + tuple(a_extra))
    if info is not None:
        info.update(a=na, a_cluster_port=ca)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if get(ha, "/", 5)["nodes"] == ["b@bench"]:
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                log.seek(0)
                sys.exit("the nodes did not join:\n" + log.read().decode()[-3000:])
            time.sleep(0.1)
        yield ha
    finally:
        for p in (na, b):
            p.terminate()
        for p in (na, b):
            p.wait(30)


def worker_pids(master):
    """The worker processes of a server: its master's direct children."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return sorted(out)


def on(port, pid, wid, path):
    """GET path run by worker wid of worker process pid (requests land anywhere: retry)."""
    for _ in range(1000):
        r = get(port, path + ("&" if "?" in path else "?") + "pid=%d&wid=%s" % (pid, wid))
        if "elsewhere" not in r:
            return r
    sys.exit("no request landed on worker %s of process %d" % (wid, pid))


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    n = len(xs)
    return None if not n else xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def hop(a):
    """The --hop measurement: returns (rows of medians, every run, load averages)."""
    info = {}
    with two_nodes(a.binary, a_extra=("--processes", "2", "--workers", "2"), info=info) as ha:
        end = time.monotonic() + 30
        while len(pids := worker_pids(info["a"].pid)) != 2 or \
                not (hub := listening_pid(info["a_cluster_port"], pids)):
            if time.monotonic() > end:
                sys.exit("node a's two processes did not start: %r" % pids)
            time.sleep(0.1)
        other = [p for p in pids if p != hub][0]
        workers = {hub: set(), other: set()}  # each process's two workers
        for _ in range(400):
            if all(len(w) == 2 for w in workers.values()):
                break
            r = get(ha, "/whoami")
            workers[r["pid"]].add(r["wid"])
        else:
            sys.exit("did not find node a's four workers: %r" % workers)
        (h0, h1), (o0, o1) = sorted(workers[hub]), sorted(workers[other])
        for pid, wid in ((hub, h1), (other, o1)):  # the callees
            on(ha, pid, wid, "/register?name=echo_%s" % wid)
        configs = [("rpc_call to b from process 0 (hub)", hub, h0, "mode=rpc&target=b@bench"),
                   ("rpc_call to b from process 1", other, o0, "mode=rpc&target=b@bench"),
                   ("call() process 0 -> another worker of 0", hub, h0, "mode=call&name=echo_" + h1),
                   ("call() process 1 -> another worker of 1", other, o0,
                    "mode=call&name=echo_" + o1),
                   ("call() process 0 -> a worker of 1", hub, h0, "mode=call&name=echo_" + o1),
                   ("call() process 1 -> a worker of 0", other, o0, "mode=call&name=echo_" + h1)]
        for _, pid, wid, q in configs:  # warm-up, and a check that every path works
            r = on(ha, pid, wid, "/bench?callers=1&seconds=0.3&size=%d&%s" % (a.size, q))
            if r["errors"] or not r["calls"]:
                sys.exit("%s: %r" % (q, r))
        load = [os.getloadavg()]
        runs = []
        for rnd in range(a.rounds):
            for what, pid, wid, q in configs:
                for k in a.callers:
                    r = on(ha, pid, wid, "/bench?callers=%d&seconds=%s&size=%d&%s"
                           % (k, a.seconds, a.size, q))
                    r.update(what=what, round=rnd)
                    runs.append(r)
            load.append(os.getloadavg())
    rows = []
    for what, _, _, _ in configs:
        for k in a.callers:
            mine = [r for r in runs if r["what"] == what and r["callers"] == k]
            rows.append({"what": what, "callers": k, "rounds": len(mine),
                         "calls_per_s": median([r["calls_per_s"] for r in mine]),
                         "p50_us": median([r["p50_us"] for r in mine]),
                         "p99_us": median([r["p99_us"] for r in mine]),
                         "errors": sum(len(r["errors"]) for r in mine)})
    return rows, runs, load


def main_hop(a):
    rows, runs, load = hop(a)
    print("| what | callers | calls/s | p50 (us) | p99 (us) | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %d | %.0f | %.0f | %.0f | %d |" % (r["what"], r["callers"], r["calls_per_s"],
                                                    r["p50_us"], r["p99_us"], r["errors"]))
    print("\nmedians of %d rounds of %ss each; load average (1, 5, 15 min) before: %s, after: %s"
          % (a.rounds, a.seconds, "%.2f %.2f %.2f" % load[0], "%.2f %.2f %.2f" % load[-1]))
    if a.json:
        Path(a.json).write_text(json.dumps({"size": a.size, "seconds": a.seconds,
                                            "rounds": a.rounds, "medians": rows, "runs": runs,
                                            "loadavg": load}, indent=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--callers", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--json")
    ap.add_argument("--hop", action="store_true",
                    help="node a runs processes = 2: rpc_call and call() from each process")
    ap.add_argument("--rounds", type=int, default=5, help="with --hop")
    a = ap.parse_args()
    if a.hop:
        main_hop(a)
        return
    rows = []
    with two_nodes(a.binary) as ha:
        get(ha, "/bench?target=b@bench&callers=1&seconds=0.5&size=%d" % a.size)  # warm-up
        for k in a.callers:
            rows.append(get(ha, "/bench?target=b@bench&callers=%d&seconds=%s&size=%d"
                            % (k, a.seconds, a.size)))
    print("| callers | calls | calls/s | p50 (us) | p99 (us) | errors |")
    print("|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print("| %d | %d | %.0f | %s | %s | %s |" % (r["callers"], r["calls"], r["calls_per_s"],
                                                  r["p50_us"], r["p99_us"], r["errors"] or "-"))
    if a.json:
        Path(a.json).write_text(json.dumps({"size": a.size, "seconds": a.seconds, "runs": rows},
                                           indent=2))


if __name__ == "__main__":
    main()
