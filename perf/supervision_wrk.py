#!/usr/bin/env python3
"""Failed requests under wrk load across the supervisor's events (issue 9, "measure it under wrk
load: 0 errors"): SIGHUP reloads, SIGUSR2 binary upgrades, and kill -9 of a worker process
(whose own in-flight requests are expected to fail), each repeated during one wrk run against
perf/apps/cpu_wsgi.py /hello with `processes = 2`.

For each scenario it prints wrk's requests, requests/s, socket errors (connect, read, write,
timeout) and non-2xx answers, with how many events the master logged as done (a reload or an
upgrade that did not finish would make a 0 meaningless).

    scripts/build.sh release && /usr/bin/python3 perf/supervision_wrk.py [-d 10] [-n 4] [-c 64]
"""
import argparse
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from procs_vs_threads import free_port, start_cpu_app  # perf/procs_vs_threads.py

ROOT = Path(__file__).resolve().parent.parent


def start(binary, port, pidfile, log):
    return start_cpu_app(binary, port, ["--processes", "2", "--workers", "1", "--pid", str(pidfile)],
                         stderr=log)


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                if d.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError):
            pass
    return out


def master(pidfile):
    try:
        return int(Path(pidfile).read_text())
    except (OSError, ValueError):
        return 0


def fire(kind, pidfile, n, duration):
    """n events spread over the middle of the run."""
    for i in range(n):
        time.sleep(duration / (n + 1))
        pid = master(pidfile)
        if kind == "hup":
            os.kill(pid, signal.SIGHUP)
        elif kind == "usr2":
            os.kill(pid, signal.SIGUSR2)
        elif kind == "kill9":
            kids = sorted(children(pid))
            if kids:
                os.kill(kids[i % len(kids)], signal.SIGKILL)


def run(binary, kind, opts):
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        pidfile, logpath = Path(d) / "hb.pid", Path(d) / "err.log"
        with open(logpath, "wb") as log:
            p = start(binary, port, pidfile, log)
            t = threading.Thread(target=fire, args=(kind, pidfile, opts.events, opts.duration))
            t.start()
            out = subprocess.run(["wrk", "-t2", "-c%d" % opts.connections, "-d%ds" % opts.duration,
                                  "http://127.0.0.1:%d/hello" % port], capture_output=True, text=True).stdout
            t.join()
            time.sleep(1)
            pid = master(pidfile)
            if pid:
                os.kill(pid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                pass
            for q in [pid, p.pid]:
                try:
                    os.killpg(q, signal.SIGKILL)
                except (OSError, TypeError):
                    pass
        err = logpath.read_text(errors="replace")
    done = {"hup": len(re.findall(r"Reloaded: generation", err)),
            "usr2": len(re.findall(r"Binary upgrade: ready", err)),
            "kill9": len(re.findall(r"killed by signal 9", err)),
            "none": 0}[kind]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    sock = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, rps, sock.group(1) if sock else "none", int(non2xx.group(1)) if non2xx else 0, done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds of each wrk run")
    ap.add_argument("-n", "--events", type=int, default=4, help="events per run")
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("--binary", default=str(ROOT / "build" / "hornbeam-uring"))
    ap.add_argument("scenarios", nargs="*", default=["none", "hup", "usr2", "kill9"])
    opts = ap.parse_args()
    print("wrk -t2 -c%d -d%ds /hello, processes = 2, %d events per run" % (opts.connections, opts.duration, opts.events))
    print("%-6s %9s %10s %8s %8s  %s" % ("event", "requests", "req/s", "done", "non-2xx", "socket errors"))
    for kind in opts.scenarios:
        reqs, rps, sock, non2xx, done = run(opts.binary, kind, opts)
        print("%-6s %9d %10.0f %8s %8d  %s" % (kind, reqs, rps, "%d/%d" % (done, opts.events) if kind != "none" else "-",
                                                non2xx, sock), flush=True)


if __name__ == "__main__":
    main()
