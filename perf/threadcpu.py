#!/usr/bin/python3
"""CPU per request of each server thread (stdlib only; run with /usr/bin/python3).

Starts hornbeam-uring with one worker pinned to CPU 1 (as perf/bench.py does), runs a wrk
warm-up and then a measured `wrk -t1 -c64` pinned to CPU 0, and prints for each thread of the
worker process its CPU time per request from /proc/PID/task/TID: schedstat (ns on the CPU,
exact) and stat (utime/stime, tick-sampled), its voluntary and involuntary context switches per
second, and with --syscalls the io_uring_enter/write/poll/read calls per request (perf stat on
syscall tracepoints: needs root or perf_event_paranoid <= -1). Server arguments after `--`.

    /usr/bin/python3 perf/threadcpu.py flask_bench:app /hello/bench
    /usr/bin/python3 perf/threadcpu.py starlette_bench:app /hello/bench -- --no-io-sched-batch
"""
import argparse
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PERF = Path(__file__).resolve().parent
SYSCALLS = ("io_uring_enter", "write", "poll", "read", "futex")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(pid):
    """{name:tid: (utime ticks, stime ticks, run ns, voluntary, involuntary switches)}"""
    out = {}
    for t in glob.glob("/proc/%d/task/*" % pid):
        try:
            name = Path(t, "comm").read_text().strip()
            st = Path(t, "stat").read_text().rsplit(")", 1)[1].split()
            run_ns = int(Path(t, "schedstat").read_text().split()[0])
            status = Path(t, "status").read_text()
            v = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
            nv = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
            out["%s:%s" % (name, t.rsplit("/", 1)[1])] = (int(st[11]), int(st[12]), run_ns, v, nv)
        except (OSError, AttributeError, IndexError, ValueError):
            pass  # the thread ended meanwhile
    return out


def wrk(url, secs, latency=False):
    cmd = ["taskset", "-c", "0", "wrk", "-t1", "-c64", "-d%d" % secs, url]
    if latency:
        cmd.insert(4, "--latency")
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def worker_pid(master):
    kids = Path("/proc/%d/task/%d/children" % (master, master)).read_text().split()
    return int(kids[0]) if kids else master


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("app")
    ap.add_argument("path")
    ap.add_argument("-d", "--duration", type=int, default=5)
    ap.add_argument("--hornbeam-bin", default=str(PERF.parent / "build" / "hornbeam-uring"))
    ap.add_argument("--syscalls", action="store_true")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    o = ap.parse_args(argv[:cut])
    o.server_args = argv[cut + 1:]
    port = free_port()
    cmd = ["taskset", "-c", "1", o.hornbeam_bin, o.app, "--bind", "127.0.0.1:%d" % port, "--workers", "1",
           "--pythonpath", str(PERF / "apps"), "--pythonpath", "/usr/lib/python3/dist-packages",
           "--no-access-log"] + o.server_args
    srv = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run(o, srv, "http://127.0.0.1:%d%s" % (port, o.path), port)
    finally:
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait()


def run(o, srv, url, port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    wrk(url, 2)
    pid = worker_pid(srv.pid)
    stat = None
    with tempfile.NamedTemporaryFile("r", suffix=".perfstat") as out:
        if o.syscalls:
            events = ",".join("syscalls:sys_enter_" + s for s in SYSCALLS)
            stat = subprocess.Popen(["perf", "stat", "-x,", "-o", out.name, "--per-thread", "-e", events,
                                     "-p", str(pid), "--", "sleep", str(o.duration)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a = snapshot(pid)
        text = wrk(url, o.duration, latency=True)
        b = snapshot(pid)
        if stat:
            stat.wait()
        report(o, text, a, b, out.read() if stat else "")


def report(o, text, a, b, perfstat):
    n = int(re.search(r"(\d+) requests in", text).group(1))
    tck, d = os.sysconf("SC_CLK_TCK"), o.duration
    print("%s %s %s: %d requests, %.0f req/s" % (o.app, o.path, " ".join(o.server_args), n, n / d))
    total = 0
    for k in sorted(b):
        if k not in a or b[k][2] - a[k][2] < 1e6:
            continue
        u, s, ns, v, nv = (b[k][i] - a[k][i] for i in range(5))
        total += ns
        print("  %-20s %6.1f us/req (stat: user %5.2f s, sys %5.2f s)  switches/s: voluntary %6.0f, "
              "involuntary %6.0f" % (k, ns / 1e3 / n, u / tck, s / tck, v / d, nv / d))
    for line in perfstat.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[1].isdigit() and int(f[1]):
            print("    %-20s %-16s %6.2f/req" % (f[0], f[3].split("sys_enter_")[-1], int(f[1]) / n))
    print("  all threads %.1f us/req" % (total / 1e3 / n))
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    pct = dict(re.findall(r"\s(50|99)%\s+(\S+)", text))
    print("  latency avg %s, p50 %s, p99 %s, max %s" % (lat.group(1), pct.get("50"), pct.get("99"), lat.group(3)))


if __name__ == "__main__":
    main()
