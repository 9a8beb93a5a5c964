#!/usr/bin/python3
"""HTTP/2 benchmark: h2load against hornbeam-uring (hello WSGI and ASGI) and nginx on the same
hello response, side by side in one run, over h2c (prior knowledge) and over TLS (ALPN h2, the
EC P-256 certificate of tests/tls/make_certs.sh for every server).

Each server is pinned to one CPU (taskset -c SERVER_CPU, one worker / one nginx worker, started
in its own process group of this session), h2load to another (taskset -c CLIENT_CPU), -c 64 -m 10
by default. Rounds go round-robin (A B C A B C) so machine noise hits every server alike; the
median of the rounds is reported with its spread and hornbeam's ratio to nginx, and saved to
perf/results/<time>-h2load.{json,md}.

    /usr/bin/python3 perf/h2load_bench.py                 # h2c and TLS, 3 rounds of 5 s
    /usr/bin/python3 perf/h2load_bench.py --transports tls -r 5 -d 10
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench
import hello_servers

PERF = Path(__file__).resolve().parent
REPO = PERF.parent


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("port %d never opened" % port)


def h2load(opts, port, secs, tls):
    cmd = ["taskset", "-c", opts.client_cpu, "h2load", "-c", str(opts.connections), "-m",
           str(opts.streams), "-D", str(secs), "-t", "1",
           "%s://127.0.0.1:%d/" % ("https" if tls else "http", port)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout
    m = re.search(r"finished in .*?, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed",
                   out)
    if not m or not ok or int(ok.group(2)) > 0:
        raise RuntimeError("h2load failed:\n" + out[-2000:])
    return float(m.group(1)), int(ok.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-d", "--duration", type=int, default=5)
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("-m", "--streams", type=int, default=10)
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--client-cpu", default="0")
    ap.add_argument("--servers", default=hello_servers.SERVERS)
    ap.add_argument("--transports", default="h2c,tls", help="h2c (prior knowledge), tls (ALPN h2)")
    ap.add_argument("--hornbeam-bin", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--out-dir", default=str(PERF / "results"))
    ap.add_argument("--no-save", action="store_true")
    opts = ap.parse_args()
    for tool in ("h2load", "taskset"):
        if not shutil.which(tool):
            sys.exit("%s not found (apt-get install nghttp2-client util-linux)" % tool)
    servers = opts.servers.split(",")
    transports = opts.transports.split(",")
    if "nginx" in servers and not shutil.which("nginx"):
        sys.exit("nginx not found (apt-get install nginx-light)")
    with tempfile.TemporaryDirectory() as certs:
        opts.certs = certs
        if "tls" in transports:
            hello_servers.make_certs(certs)
        run(opts, servers, transports)


def run(opts, servers, transports):
    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    load0 = os.getloadavg()[0]
    keys = [(t, s) for t in transports for s in servers]
    results = {k: [] for k in keys}
    cpu = {k: [] for k in keys}  # server CPU microseconds per request
    for rnd in range(opts.rounds):
        for t, name in keys:
            with tempfile.TemporaryDirectory() as tmp:
                os.chmod(tmp, 0o755)
                port = hello_servers.free_port()
                p = hello_servers.start(name, opts, port, tmp, t == "tls", http2=True)
                try:
                    wait_port(port)
                    h2load(opts, port, 1, t == "tls")  # warm-up, not counted
                    t0 = bench.tree_cpu(p.pid)
                    rps, done = h2load(opts, port, opts.duration, t == "tls")
                    used = hello_servers.cpu_seconds(p, t0)
                finally:
                    hello_servers.stop(p)
            results[(t, name)].append(rps)
            cpu[(t, name)].append(used * 1e6 / done if done else None)
            print("round %d %-4s %-14s %10.0f req/s" % (rnd + 1, t, name, rps), flush=True)
    lines = ["# h2load — %s" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "",
             "h2load -c %d -m %d -t 1, %d s (+1 s warm-up) x %d rounds interleaved, one worker "
             "per server, server on cpu %s, client on cpu %s; load avg %.2f at start, %.2f at end "
             "(other work shared the machine: read the ratios)." % (
                 opts.connections, opts.streams, opts.duration, opts.rounds, opts.server_cpu,
                 opts.client_cpu, load0, os.getloadavg()[0]), "",
             "| transport | server | req/s median | min–max | spread | x nginx | server CPU "
             "µs/req | CPU/req x nginx |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    med = {k: statistics.median(v) for k, v in results.items()}
    cmed = {k: statistics.median([x for x in v if x] or [0]) for k, v in cpu.items()}
    for t, s in keys:
        v = results[(t, s)]
        ng, cng = med.get((t, "nginx")), cmed.get((t, "nginx"))
        lines.append("| %s | %s | %s | %s–%s | ±%.1f%% | %s | %.1f | %s |" % (
            t, s, "{:,.0f}".format(med[(t, s)]), "{:,.0f}".format(min(v)),
            "{:,.0f}".format(max(v)), (max(v) - min(v)) / med[(t, s)] * 50,
            "%.2f" % (med[(t, s)] / ng) if ng and s != "nginx" else "-", cmed[(t, s)],
            "%.2f" % (cmed[(t, s)] / cng) if cng and s != "nginx" else "-"))
    md = "\n".join(lines) + "\n"
    print("\n" + md)
    if not opts.no_save:
        out = Path(opts.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / ("%s-h2load.md" % stamp)).write_text(md)
        (out / ("%s-h2load.json" % stamp)).write_text(json.dumps({
            "connections": opts.connections, "streams": opts.streams,
            "duration": opts.duration, "rounds": opts.rounds, "server_cpu": opts.server_cpu,
            "client_cpu": opts.client_cpu, "loadavg_start": load0,
            "rps": {"%s/%s" % k: v for k, v in results.items()},
            "server_cpu_us_per_req": {"%s/%s" % k: v for k, v in cpu.items()},
            "median": {"%s/%s" % k: v for k, v in med.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
