#!/usr/bin/python3
"""HTTP/2 (h2c, prior knowledge) benchmark: h2load against hornbeam-uring (hello WSGI and ASGI)
and nginx's h2c on the same hello response, side by side in one run.

Each server is pinned to one CPU (taskset -c SERVER_CPU, one worker / one nginx worker), h2load
to another (taskset -c CLIENT_CPU), -c 64 -m 10 by default. Rounds go round-robin (A B C A B C)
so machine noise hits every server alike; the median of the rounds is reported with hornbeam's
ratio to nginx.

    /usr/bin/python3 perf/h2load_bench.py                 # 3 rounds of 5 s, cpus 1 (servers), 0 (client)
    /usr/bin/python3 perf/h2load_bench.py -r 5 -d 10 --hornbeam-bin build/hornbeam-uring
"""
import argparse
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

PERF = Path(__file__).resolve().parent
REPO = PERF.parent
APPS = PERF / "apps"

NGINX_CONF = """worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/px; fastcgi_temp_path {tmp}/fc;
    uwsgi_temp_path {tmp}/uw; scgi_temp_path {tmp}/sc;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{ default_type text/plain; return 200 "Hello, World!"; }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("port %d never opened" % port)


def start(name, opts, port, tmp):
    pin = ["taskset", "-c", opts.server_cpu]
    if name == "nginx":
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
        cmd = pin + ["nginx", "-p", tmp, "-c", str(conf), "-e", "stderr"]
    else:
        app, cls = ("hello_wsgi:application", "wsgi") if name == "hornbeam-wsgi" else \
            ("hello_asgi:app", "asgi")
        cmd = pin + [opts.hornbeam_bin, app, "--bind", "127.0.0.1:%d" % port, "--workers", "1",
                     "--worker-class", cls, "--pythonpath", str(APPS), "--log-level", "warning"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    wait_port(port)
    return p


def stop(p):
    try:
        os.killpg(p.pid, 15)
        p.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(p.pid, 9)
        p.wait()


def h2load(opts, port, secs):
    cmd = ["taskset", "-c", opts.client_cpu, "h2load", "-c", str(opts.connections), "-m",
           str(opts.streams), "-D", str(secs), "-t", "1", "http://127.0.0.1:%d/" % port]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout
    m = re.search(r"finished in .*?, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed",
                   out)
    if not m or not ok or int(ok.group(2)) > 0:
        raise RuntimeError("h2load failed:\n" + out[-2000:])
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-d", "--duration", type=int, default=5)
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("-m", "--streams", type=int, default=10)
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--client-cpu", default="0")
    ap.add_argument("--servers", default="nginx,hornbeam-wsgi,hornbeam-asgi")
    ap.add_argument("--hornbeam-bin", default=str(REPO / "build" / "hornbeam-uring"))
    opts = ap.parse_args()
    for tool in ("h2load", "taskset"):
        if not shutil.which(tool):
            sys.exit("%s not found (apt-get install nghttp2-client util-linux)" % tool)
    servers = opts.servers.split(",")
    if "nginx" in servers and not shutil.which("nginx"):
        sys.exit("nginx not found (apt-get install nginx-light)")
    results = {s: [] for s in servers}
    for rnd in range(opts.rounds):
        for name in servers:
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                p = start(name, opts, port, tmp)
                try:
                    h2load(opts, port, 1)  # warm-up, not counted
                    rps = h2load(opts, port, opts.duration)
                finally:
                    stop(p)
            results[name].append(rps)
            print("round %d %-14s %10.0f req/s" % (rnd + 1, name, rps), flush=True)
    print("\nh2load -c %d -m %d, %d s x %d rounds, server on cpu %s, client on cpu %s" % (
        opts.connections, opts.streams, opts.duration, opts.rounds, opts.server_cpu,
        opts.client_cpu))
    med = {s: statistics.median(v) for s, v in results.items()}
    for s in servers:
        line = "%-14s median %10.0f req/s  (min %.0f, max %.0f)" % (
            s, med[s], min(results[s]), max(results[s]))
        if "nginx" in med and s != "nginx":
            line += "  %.2fx nginx" % (med[s] / med["nginx"])
        print(line)


if __name__ == "__main__":
    main()
