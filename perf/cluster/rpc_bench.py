#!/usr/bin/env python3
"""perf/cluster/rpc_bench.py: rpc_call round trip between two hornbeam-uring nodes on loopback.

Starts node b (answers bench_app.echo) and node a (the callers: threads in its one worker),
joined through a cookie-authenticated cluster link, then asks a for runs with 1 and 64 callers
(and any --callers given): calls/s and the round-trip latency p50/p99 of rpc_call with a small
argument (--size bytes, 16 by default). Prints a Markdown table; --json writes the numbers.

    scripts/build.sh release
    /usr/bin/python3 perf/cluster/rpc_bench.py [--seconds 3] [--callers 1 64] [--json out.json]

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
def two_nodes(binary, extra=lambda name: ()):
    """Node b (answers bench_app.echo, 8 threads) and node a (the callers, 2 threads), each with
    extra(its cert name: node2, node1) on its command line; yields a's HTTP port once a sees b.
    Both are stopped on the way out."""
    log = tempfile.TemporaryFile()
    ha, hb_, ca, cb = free_port(), free_port(), free_port(), free_port()
    b = start(binary, "b@bench", hb_, cb, None, 8, log, extra("node2"))
    na = start(binary, "a@bench", ha, ca, cb, 2, log, extra("node1"))
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--callers", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--json")
    a = ap.parse_args()
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
