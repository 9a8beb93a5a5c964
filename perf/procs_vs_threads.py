#!/usr/bin/env python3
"""What process isolation costs: hornbeam-uring with `processes = 2` against 2 workers in one
process (sub-interpreters, each its own GIL) and 2 workers sharing the main interpreter's GIL
(`interpreter = main`), on the same 2 CPUs, in one run (issue 9, "processes = 2 vs 2 threads").

Two paths of perf/apps/cpu_wsgi.py: /hello (the server's overhead dominates) and /cpu (a ~0.3 ms
pure-Python loop per request: the GIL dominates). The server is pinned to 2 CPUs (taskset) and
wrk runs beside it (on the same machine; pass --wrk-cpus to give it other CPUs when there are
more). Configurations are interleaved round-robin (-r rounds) and medians reported.

    scripts/build.sh release && /usr/bin/python3 perf/procs_vs_threads.py [-d 5] [-r 2]
"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "perf" / "apps"
CONFIGS = [
    ("processes=2 x workers=1", ["--processes", "2", "--workers", "1"]),
    ("processes=1 x workers=2 (isolated: a GIL each)", ["--processes", "1", "--workers", "2"]),
    ("processes=1 x workers=2 (interpreter=main: one GIL)",
     ["--processes", "1", "--workers", "2", "--interpreter", "main"]),
]
PATHS = ["/hello", "/cpu"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cpu_app(binary, port, args, prefix=(), stderr=subprocess.PIPE):
    """Starts hornbeam-uring on perf/apps/cpu_wsgi.py and waits until /hello answers 200;
    exits with the command (and its stderr when piped) if it never does."""
    cmd = list(prefix) + [str(binary), "cpu_wsgi:app", "--bind", "127.0.0.1:%d" % port,
                          "--pythonpath", str(APPS), "--no-access-log"] + list(args)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    sys.exit("server did not start: %s\n%s" % (cmd, err))


def start(binary, args, cpus, port):
    return start_cpu_app(binary, port, ["--log-level", "warning"] + args, ["taskset", "-c", cpus])


def stop(p):
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def wrk(port, path, opts):
    base = ["wrk", "-t2", "-c%d" % opts.connections, "--latency", "http://127.0.0.1:%d%s" % (port, path)]
    if opts.wrk_cpus:
        base = ["taskset", "-c", opts.wrk_cpus] + base
    subprocess.run(base[:-1] + ["-d1s", base[-1]], capture_output=True, check=True)  # warm-up
    out = subprocess.run(base[:-1] + ["-d%ds" % opts.duration, base[-1]], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return rps, float(p99.group(1)) * scale, errors.group(0) if errors else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "build" / "hornbeam-uring"))
    ap.add_argument("-d", "--duration", type=int, default=5, help="seconds measured per run")
    ap.add_argument("-r", "--rounds", type=int, default=2)
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("--cpus", default="0,1", help="the server's CPUs (taskset list)")
    ap.add_argument("--wrk-cpus", default="", help="wrk's CPUs (default: not pinned)")
    opts = ap.parse_args()
    results = {}  # (config, path) -> [(rps, p99)]
    for rnd in range(opts.rounds):
        for name, args in CONFIGS:
            port = free_port()
            p = start(opts.binary, args, opts.cpus, port)
            try:
                for path in PATHS:
                    rps, p99, err = wrk(port, path, opts)
                    results.setdefault((name, path), []).append((rps, p99))
                    print("round %d  %-52s %-6s %9.0f req/s  p99 %7.2f ms %s" % (
                        rnd + 1, name, path, rps, p99, err), flush=True)
            finally:
                stop(p)
    print("\nmedians over %d rounds, %ds each, wrk -t2 -c%d, server on CPUs %s:" % (
        opts.rounds, opts.duration, opts.connections, opts.cpus))
    print("| configuration | path | req/s | p99 ms |\n|---|---|---:|---:|")
    for name, _ in CONFIGS:
        for path in PATHS:
            runs = results[(name, path)]
            print("| %s | %s | %.0f | %.2f |" % (name, path, statistics.median(r for r, _ in runs),
                                                 statistics.median(l for _, l in runs)))


if __name__ == "__main__":
    main()
