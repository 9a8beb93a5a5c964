#!/usr/bin/python3
"""TLS benchmark: HTTPS HTTP/1.1 (wrk, keep-alive) and TLS handshakes per second (wrk with
'Connection: close': every request a new connection and a full handshake) against
hornbeam-uring (hello WSGI and ASGI, wolfSSL) and nginx (OpenSSL, 'return 200'), side by side in
one run, with the same certificate (EC P-256 from tests/tls/make_certs.sh).

The method is perf/bench.py's: each server pinned to one CPU (taskset -c SERVER_CPU, one
worker / one nginx worker, started in its own process group of this session), wrk pinned to
another (-t1), a 1 s warm-up, rounds interleaved round-robin (A B C A B C) so machine noise hits
every server alike; the median of the rounds, their spread, p50/p99 and the server's CPU time
per request are reported with hornbeam's ratio to nginx. Results go to perf/results/ as
<time>-https-hello.{json,md} and <time>-tls-handshake.{json,md}.

    /usr/bin/python3 perf/tls_bench.py                        # both scenarios, 3 rounds of 5 s
    /usr/bin/python3 perf/tls_bench.py --scenarios tls-handshake -r 5 -d 10
"""
import argparse
import json
import os
import shutil
import socket
import ssl
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
WRK_LUA = PERF / "wrk_report.lua"

SCENARIOS = {
    "https-hello": ("The hello response over HTTPS (TLS, keep-alive): hornbeam (wolfSSL) vs "
                    "nginx (OpenSSL, 'return 200').", []),
    "tls-handshake": ("TLS handshakes per second: the hello response over HTTPS with "
                      "'Connection: close', so every request is a new connection and a full "
                      "handshake (wrk does not resume sessions).", ["-H", "Connection: close"]),
}

def tls_probe(port, timeout=20):
    """Waits until the server answers GET / over TLS with 200; returns (version, cipher)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return s.version(), s.cipher()[0]
        except (OSError, ssl.SSLError) as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError("no HTTPS answer on port %d (%r)" % (port, last))


def start(name, opts, port, tmp):
    p = hello_servers.start(name, opts, port, tmp, tls=True)
    try:
        p.tls = tls_probe(port)
    except RuntimeError:
        hello_servers.stop(p)
        raise
    return p


def wrk(opts, port, secs, extra):
    cmd = ["taskset", "-c", opts.client_cpu, "wrk", "-t1", "-c%d" % opts.connections,
           "-d%ds" % secs, "--latency", "--timeout", "2s", "-s", str(WRK_LUA)] + extra + [
               "https://127.0.0.1:%d/" % port]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            d = json.loads(line[len("BENCH_JSON "):])
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
            d["socket_errors"] = d["err_connect"] + d["err_read"] + d["err_write"] + \
                d["err_timeout"]
            return d
    raise RuntimeError("wrk failed:\n" + out[-2000:])


def one_run(name, scen, opts):
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers (nobody) need nothing from it but its path
        port = hello_servers.free_port()
        p = start(name, opts, port, tmp)
        try:
            extra = SCENARIOS[scen][1]
            if opts.warmup:
                wrk(opts, port, opts.warmup, extra)
            t0 = bench.tree_cpu(p.pid)
            load = os.getloadavg()[0]
            r = wrk(opts, port, opts.duration, extra)
            cpu = hello_servers.cpu_seconds(p, t0)
            r["server_cpu_us_per_req"] = cpu * 1e6 / r["requests"] if r["requests"] else None
            r["loadavg_1m_before"] = load
            r["tls"] = list(p.tls)
            if p.poll() is not None:
                raise RuntimeError("%s exited during the run (%s)" % (name, p.returncode))
            return r
        finally:
            hello_servers.stop(p)


def summarize(runs):
    rps = [r["rps"] for r in runs]
    med = statistics.median(rps)
    cpu = [r["server_cpu_us_per_req"] for r in runs if r["server_cpu_us_per_req"]]
    return {"runs": len(runs), "rps_median": med, "rps_min": min(rps), "rps_max": max(rps),
            "rps_spread_pct": (max(rps) - min(rps)) / med * 100 if med else None,
            "p50_us_median": statistics.median(r["p50_us"] for r in runs),
            "p99_us_median": statistics.median(r["p99_us"] for r in runs),
            "cpu_us_per_req_median": statistics.median(cpu) if cpu else None,
            "socket_errors": sum(r["socket_errors"] for r in runs),
            "non_2xx_3xx": sum(r["err_status"] for r in runs),
            "tls": runs[0]["tls"]}


def table(scen, result):
    m = result["machine"]
    lines = ["# %s — %s" % (scen, result["time"]), "", SCENARIOS[scen][0], "",
             "Machine: %d CPUs, load avg at start %.2f, end %.2f (other work shared the machine: "
             "read the ratios, not the absolute numbers).  " % (
                 m["cpus"], m["loadavg_start"], m["loadavg_end"]),
             "wrk -t1 -c%d -d%ds (+%ds warm-up), %d rounds interleaved, 1 worker per server, "
             "pin: server CPU %s, wrk CPU %s." % (
                 result["connections"], result["duration"], result["warmup"], result["rounds"],
                 result["server_cpu"], result["client_cpu"]), "",
             "| server | req/s median | min–max | spread | p50 ms | p99 ms | server CPU µs/req "
             "| TLS | socket err | non-2xx |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, s in result["summary"].items():
        lines.append("| %s | %s | %s–%s | ±%.1f%% | %.2f | %.2f | %s | %s | %d | %d |" % (
            name, "{:,.0f}".format(s["rps_median"]), "{:,.0f}".format(s["rps_min"]),
            "{:,.0f}".format(s["rps_max"]), s["rps_spread_pct"] / 2, s["p50_us_median"] / 1000,
            s["p99_us_median"] / 1000,
            "%.1f" % s["cpu_us_per_req_median"] if s["cpu_us_per_req_median"] else "-",
            " ".join(s["tls"]), s["socket_errors"], s["non_2xx_3xx"]))
    if "nginx" in result["summary"]:
        ng = result["summary"]["nginx"]
        lines += ["", "| ratio | req/s (higher is better) | CPU/req (lower is better) |",
                  "|---|---:|---:|"]
        for name, s in result["summary"].items():
            if name == "nginx":
                continue
            cpu = (s["cpu_us_per_req_median"] / ng["cpu_us_per_req_median"]
                   if s["cpu_us_per_req_median"] and ng["cpu_us_per_req_median"] else None)
            lines.append("| %s/nginx | %.2f | %s |" % (
                name, s["rps_median"] / ng["rps_median"], "%.2f" % cpu if cpu else "-"))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default="https-hello,tls-handshake")
    ap.add_argument("--servers", default=hello_servers.SERVERS)
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-d", "--duration", type=int, default=5)
    ap.add_argument("-w", "--warmup", type=int, default=1)
    ap.add_argument("-c", "--connections", type=int, default=32)
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--client-cpu", default="0")
    ap.add_argument("--hornbeam-bin", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--certs", help="a make_certs.sh directory (default: made in a temp dir)")
    ap.add_argument("--out-dir", default=str(PERF / "results"))
    ap.add_argument("--no-save", action="store_true")
    opts = ap.parse_args()
    for tool in ("wrk", "taskset", "nginx", "openssl"):
        if not shutil.which(tool):
            sys.exit("%s not found (scripts/setup.sh --perf)" % tool)
    servers = opts.servers.split(",")
    scens = opts.scenarios.split(",")
    for s in scens:
        if s not in SCENARIOS:
            sys.exit("unknown scenario %s (%s)" % (s, ", ".join(SCENARIOS)))
    with tempfile.TemporaryDirectory() as certdir:
        if not opts.certs:
            hello_servers.make_certs(certdir)
            opts.certs = certdir
        for scen in scens:
            run_scenario(scen, servers, opts)


def run_scenario(scen, servers, opts):
    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    result = {"scenario": scen, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]},
              "rounds": opts.rounds, "duration": opts.duration, "warmup": opts.warmup,
              "connections": opts.connections, "server_cpu": opts.server_cpu,
              "client_cpu": opts.client_cpu, "runs": {s: [] for s in servers}}
    for rnd in range(opts.rounds):
        for name in servers:
            r = one_run(name, scen, opts)
            result["runs"][name].append(r)
            print("%s round %d %-14s %10.0f req/s" % (scen, rnd + 1, name, r["rps"]), flush=True)
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    result["summary"] = {s: summarize(v) for s, v in result["runs"].items()}
    md = table(scen, result)
    print("\n" + md)
    if not opts.no_save:
        out = Path(opts.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / ("%s-%s.json" % (stamp, scen))).write_text(json.dumps(result, indent=1) + "\n")
        (out / ("%s-%s.md" % (stamp, scen))).write_text(md)


if __name__ == "__main__":
    main()
