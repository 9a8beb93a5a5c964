#!/usr/bin/env python3
"""Failed requests under wrk load across the supervisor's events (issue 9, "measure it under wrk
load: 0 errors"): SIGHUP reloads, SIGUSR2 binary upgrades, and kill -9 of a worker process
(whose own in-flight requests are expected to fail), each repeated during one wrk run against
perf/apps/cpu_wsgi.py /hello with `processes = 2`.

For each scenario it prints wrk's requests, requests/s, socket errors (connect, read, write,
timeout) and non-2xx answers, with how many events the master logged as done (a reload or an
upgrade that did not finish would make a 0 meaningless).

    scripts/build.sh release && /usr/bin/python3 perf/supervision_wrk.py [-d 10] [-n 4] [-c 64]

--kill-cycles N (issue 9: "no descriptor or RSS growth over 100 kill cycles"; the CI test kills
20 times) instead runs one wrk for N cycles of kill -9 of worker process 1 (each replacement gets
--interval seconds to boot before the next kill), and reports the descriptors and resident
memory of the master and of worker process 0 (which survives every cycle) at the start, every 10
cycles and at the end, with wrk's totals; --out writes them as .md and .json.
"""
import json
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


def proc_stats(pid):
    """(descriptors, VmRSS KiB) of pid, or (None, None) once it is gone."""
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/status" % pid) as f:
            rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return fds, rss
    except (OSError, AttributeError):
        return None, None


def slot_pids(log_text):
    """{slot: newest pid} from the master's "Booting worker process S with pid P" lines."""
    return {int(s): int(p) for s, p in re.findall(r"Booting worker process (\d+) with pid (\d+)", log_text)}


def kill_cycles(binary, opts):
    """opts.kill_cycles kills of worker process 1 under one wrk run; samples every 10 cycles."""
    port = free_port()
    samples, deaths = [], 0
    duration = int(opts.kill_cycles * opts.interval + 6)
    with tempfile.TemporaryDirectory() as d:
        pidfile, logpath = Path(d) / "hb.pid", Path(d) / "err.log"
        with open(logpath, "wb") as log:
            p = start(binary, port, pidfile, log)
            wrk = subprocess.Popen(["wrk", "-t2", "-c%d" % opts.connections, "-d%ds" % duration,
                                    "http://127.0.0.1:%d/hello" % port], stdout=subprocess.PIPE, text=True)
            time.sleep(2)
            mpid = master(pidfile)

            def sample(cycle):
                pids = slot_pids(logpath.read_text(errors="replace"))
                row = {"cycle": cycle}
                for name, pid in (("master", mpid), ("survivor", pids.get(0)), ("replaced", pids.get(1))):
                    row[name + "_pid"] = pid
                    row[name + "_fds"], row[name + "_rss_kib"] = proc_stats(pid)
                samples.append(row)
                print("cycle %3d  master %s fds %s KiB  survivor %s fds %s KiB  replaced %s fds %s KiB" % (
                    cycle, row["master_fds"], row["master_rss_kib"], row["survivor_fds"], row["survivor_rss_kib"],
                    row["replaced_fds"], row["replaced_rss_kib"]), flush=True)

            sample(0)
            start_t = time.monotonic()
            for c in range(1, opts.kill_cycles + 1):
                victim = slot_pids(logpath.read_text(errors="replace")).get(1)
                os.kill(victim, signal.SIGKILL)
                deadline = start_t + c * opts.interval
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                if c % 10 == 0 or c == opts.kill_cycles:
                    sample(c)
            out = wrk.communicate()[0]
            os.kill(mpid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        err = logpath.read_text(errors="replace")
    deaths = len(re.findall(r"killed by signal 9", err))
    before_ready = len(re.findall(r"before it was ready", err))
    sock = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "binary": binary, "cycles": opts.kill_cycles, "interval_s": opts.interval,
        "wrk": "wrk -t2 -c%d -d%ds /hello" % (opts.connections, duration), "processes": 2,
        "deaths_logged": deaths, "deaths_before_ready": before_ready,
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "socket_errors": sock.group(1) if sock else "none",
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "samples": samples,
    }


def write_cycles(res, out):
    Path(out + ".json").write_text(json.dumps(res, indent=1) + "\n")
    rows = ["| cycle | master fds | master RSS KiB | survivor fds | survivor RSS KiB | replaced fds | replaced RSS KiB |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["samples"]:
        rows.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            r["cycle"], r["master_fds"], r["master_rss_kib"], r["survivor_fds"], r["survivor_rss_kib"],
            r["replaced_fds"], r["replaced_rss_kib"]))
    Path(out + ".md").write_text(
        "# %d kill -9 cycles under wrk (perf/supervision_wrk.py --kill-cycles %d)\n\n"
        "%s, processes = 2, worker process 1 killed every %.1f s; worker process 0 survives every "
        "cycle. The master logged %d deaths (%d before ready). wrk: %d requests (%.0f/s), socket errors: "
        "%s, non-2xx: %d (the killed process's own in-flight requests fail by design).\n\n%s\n" % (
            res["cycles"], res["cycles"], res["wrk"], res["interval_s"], res["deaths_logged"],
            res["deaths_before_ready"], res["requests"], res["requests_per_s"], res["socket_errors"],
            res["non_2xx"], "\n".join(rows)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds of each wrk run")
    ap.add_argument("-n", "--events", type=int, default=4, help="events per run")
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("--binary", default=str(ROOT / "build" / "hornbeam-uring"))
    ap.add_argument("--kill-cycles", type=int, default=0, help="the kill-cycles mode (above): how many")
    ap.add_argument("--interval", type=float, default=1.5, help="seconds per kill cycle")
    ap.add_argument("--out", help="kill-cycles mode: write OUT.md and OUT.json")
    ap.add_argument("scenarios", nargs="*", default=["none", "hup", "usr2", "kill9"])
    opts = ap.parse_args()
    if opts.kill_cycles:
        res = kill_cycles(opts.binary, opts)
        print("wrk: %d requests, socket errors: %s, non-2xx: %d; deaths logged %d" % (
            res["requests"], res["socket_errors"], res["non_2xx"], res["deaths_logged"]))
        if opts.out:
            write_cycles(res, opts.out)
        return
    print("wrk -t2 -c%d -d%ds /hello, processes = 2, %d events per run" % (opts.connections, opts.duration, opts.events))
    print("%-6s %9s %10s %8s %8s  %s" % ("event", "requests", "req/s", "done", "non-2xx", "socket errors"))
    for kind in opts.scenarios:
        reqs, rps, sock, non2xx, done = run(opts.binary, kind, opts)
        print("%-6s %9d %10.0f %8s %8d  %s" % (kind, reqs, rps, "%d/%d" % (done, opts.events) if kind != "none" else "-",
                                                non2xx, sock), flush=True)


if __name__ == "__main__":
    main()
