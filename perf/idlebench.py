"""Idle connection scale for perf/bench.py: server memory per idle connection (stdlib only).

Scenarios idle-http (keep-alive HTTP/1.1 connections, each after one request) and idle-ws
(upgraded WebSocket connections that send nothing). Per server and round: start it (as
bench.py does), open 100 connections (the baseline: one-time allocations are done by then),
measure the server's memory (RSS and PSS of its whole process tree), open more connections up
to each count of --idle-connections (10000 by default; 19000 is the most this sandbox allows:
20000 descriptors per process, for the client as for the server), wait --idle-settle seconds,
measure again, check that every connection is still open, and report (memory - baseline) /
(connections - 100) in KiB per connection. The client is this process: sequential batches of
64 connections (connect, request, wait for each answer), so no listen backlog overflows.

Every server gets its idle timeouts raised (keep-alive 600 s, no WebSocket pings) and its
connection limit raised to 20000, so that nothing closes a connection during the measurement;
the exact commands are in the JSON.
"""

import datetime
import json
import os
import resource
import select
import socket
import statistics
import time
from pathlib import Path

BASE = 100  # connections open when the baseline is measured
BATCH = 64


def _with_args(build, extra):
    def b(ctx):
        return build(ctx) + list(extra)
    return b


def _nginx_idle(nginx_build):
    def b(ctx):
        cmd = nginx_build(ctx)
        conf = ctx.tmp / "nginx.conf"
        text = conf.read_text().replace("worker_connections 4096;", "worker_connections 20000;")
        conf.write_text(text.replace("keepalive_timeout 75s;", "keepalive_timeout 600s;"))
        return cmd
    return b


def scenarios(hornbeam, nginx, uvicorn):
    hb = ["--keepalive", "600", "--max-connections", "20000"]
    return {
        "idle-http": {
            "description": "Idle keep-alive HTTP/1.1 connections: server memory (RSS, PSS) per "
                           "connection, each connection idle after one GET / (hello). "
                           "perf/idlebench.py; --idle-connections sets the counts.",
            "path": "/", "expect": b"Hello, World!", "subject": "hornbeam", "client": "idle",
            "servers": {
                "hornbeam": _with_args(hornbeam("hello_wsgi:application"), hb),
                "nginx": _nginx_idle(nginx()),
                "uvicorn": _with_args(uvicorn("hello_asgi:app"), ["--timeout-keep-alive", "600"]),
            },
        },
        "idle-ws": {
            "description": "Idle WebSocket connections (upgraded on /ws of perf/apps/echo_asgi.py, "
                           "no messages): server memory (RSS, PSS) per connection. "
                           "perf/idlebench.py; --idle-connections sets the counts.",
            "path": "/", "expect": b"ok", "subject": "hornbeam", "client": "idle", "ws_path": "/ws",
            "servers": {
                "hornbeam": _with_args(hornbeam("echo_asgi:app", worker_class="asgi"),
                                       hb + ["--websocket-ping-interval", "0"]),
                "uvicorn": _with_args(uvicorn("echo_asgi:app"),
                                      ["--ws-ping-interval", "600", "--ws-ping-timeout", "600"]),
            },
        },
    }


def _request(scen, port):
    if scen.get("ws_path"):
        return (f"GET {scen['ws_path']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    return f"GET {scen['path']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def _answered(scen, buf):
    """Whether buf holds the whole answer (101 head, or 200 head + Content-Length body)."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    status = head.split(b" ", 2)[1] if b" " in head else b""
    if scen.get("ws_path"):
        if status != b"101":
            raise RuntimeError(f"upgrade refused: {head[:80]!r}")
        return True
    if status != b"200":
        raise RuntimeError(f"unexpected answer: {head[:80]!r}")
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    raise RuntimeError("answer without Content-Length")


def open_connections(scen, port, n, socks, timeout=30.0):
    """Opens connections until len(socks) == n, each answered once; appends them to socks."""
    req = _request(scen, port)
    while len(socks) < n:
        batch = []
        for _ in range(min(BATCH, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.sendall(req)
            batch.append(s)
        for s in batch:
            buf = b""
            while not _answered(scen, buf):
                data = s.recv(65536)
                if not data:
                    raise RuntimeError(f"connection {len(socks)} closed by the server while opening")
                buf += data
            socks.append(s)


def closed_count(socks):
    """Connections the server closed (or sent something on) since they went idle."""
    p = select.poll()
    for s in socks:
        p.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    return len(p.poll(0))


def one_server(bench, name, scen, opts, tmp_root, rep, counts):
    build = scen["servers"][name]
    p, port, cmd, log, _ = bench.start_server(name, build, scen, opts, tmp_root, f"idle{rep}")
    socks = []
    try:
        open_connections(scen, port, BASE, socks)
        time.sleep(opts.idle_settle)
        base = bench.tree_memory(p.pid)
        res = {"repeat": rep, "cmd": cmd, "base_connections": BASE,
               "base_rss_kib": base.get("server_rss_kib"), "base_pss_kib": base.get("server_pss_kib"),
               "points": []}
        for n in counts:
            t0 = time.monotonic()
            open_connections(scen, port, n, socks)
            secs = time.monotonic() - t0
            time.sleep(opts.idle_settle)
            mem = bench.tree_memory(p.pid)
            closed = closed_count(socks)
            pt = {"connections": n, "open_s": secs, "closed_by_server": closed,
                  "rss_kib": mem.get("server_rss_kib"), "pss_kib": mem.get("server_pss_kib")}
            for k in ("rss", "pss"):
                if pt[f"{k}_kib"] is not None and res[f"base_{k}_kib"] is not None:
                    pt[f"{k}_kib_per_conn"] = (pt[f"{k}_kib"] - res[f"base_{k}_kib"]) / (n - BASE)
            res["points"].append(pt)
            print(f"  [{rep}/{opts.repeats}] {name:<9} {n:>6} idle: RSS {pt['rss_kib'] / 1024:.1f} MiB, "
                  f"{pt.get('rss_kib_per_conn', 0):.2f} KiB/conn (PSS {pt.get('pss_kib_per_conn', 0):.2f}), "
                  f"opened in {secs:.1f} s, {closed} closed", flush=True)
            if p.poll() is not None:
                raise RuntimeError(f"server exited ({p.returncode})\n{bench.tail(log)}")
        return res
    finally:
        for s in socks:
            s.close()
        bench.stop(p)


def table_md(result):
    lines = [f"# {result['scenario']} — {result['started_utc']}", "", result["description"], "",
             f"Load avg at start {result['machine']['loadavg_start'][0]:.2f}, end "
             f"{result['machine']['loadavg_end'][0]:.2f}; {result['config']['repeats']} rounds, "
             f"medians; baseline at {BASE} connections; settle {result['config']['idle_settle']} s.", "",
             "| server | connections | RSS MiB | KiB/conn (RSS) | KiB/conn (PSS) | open s | closed by server | rounds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, srv in result["servers"].items():
        if not srv.get("summary"):
            lines.append(f"| {name} | {srv['status']}: {(srv.get('reason') or '').splitlines()[:1]} | | | | | | 0 |")
            continue
        for n, s in srv["summary"].items():
            lines.append(f"| {name} | {n} | {s['rss_kib'] / 1024:.1f} | {s['rss_kib_per_conn']:.2f} | "
                         f"{s['pss_kib_per_conn']:.2f} | {s['open_s']:.1f} | {s['closed_by_server']} | {s['rounds']} |")
    if result["ratios"]:
        lines += ["", "| ratio (memory per connection, lower is better) | connections | RSS | PSS |",
                  "|---|---:|---:|---:|"]
        for k, r in result["ratios"].items():
            lines.append(f"| {k} | {r['connections']} | x{r['rss']:.2f} | x{r['pss']:.2f} |")
    return "\n".join(lines) + "\n"


def _summary(runs):
    out = {}
    for pt in runs[0]["points"]:
        n = pt["connections"]
        pts = [q for r in runs for q in r["points"] if q["connections"] == n]

        def med(key):
            xs = [q[key] for q in pts if q.get(key) is not None]
            return statistics.median(xs) if xs else None
        out[str(n)] = {"rounds": len(pts), "rss_kib": med("rss_kib"), "pss_kib": med("pss_kib"),
                       "rss_kib_per_conn": med("rss_kib_per_conn"),
                       "pss_kib_per_conn": med("pss_kib_per_conn"), "open_s": med("open_s"),
                       "closed_by_server": sum(q["closed_by_server"] for q in pts)}
    return out


def run_scenario(bench, sname, scen, opts, tmp_root):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    counts = sorted(set(opts.idle_connections))
    need = max(counts) + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        soft = min(need, hard)
    if soft < need:
        raise SystemExit(f"{sname}: {max(counts)} connections need {need} descriptors; the limit is {hard}")
    names = bench.scenario_servers(sname, scen, opts)
    now = lambda: datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    result = {"scenario": sname, "description": scen["description"], "subject": scen["subject"],
              "started_utc": now(), "machine": bench.machine_info(),
              "config": {"counts": counts, "repeats": opts.repeats, "idle_settle": opts.idle_settle,
                         "server_cpus": opts.server_cpus, "workers": opts.workers, "order": names},
              "versions": bench.versions(names, opts),
              "servers": {n: {"status": "pending", "runs": []} for n in names}, "interrupted": False}
    print(f"== scenario {sname}: {', '.join(names)}; idle connections {counts}, {opts.repeats} rounds",
          flush=True)
    try:
        for rep in range(1, opts.repeats + 1):
            for name in names:
                srv = result["servers"][name]
                if srv["status"] in ("skipped", "failed"):
                    continue
                try:
                    srv["runs"].append(one_server(bench, name, scen, opts, tmp_root, rep, counts))
                    srv["status"] = "ok"
                except bench.Skip as e:
                    srv.update(status="skipped", reason=str(e))
                    print(f"  {name} SKIPPED: {e}", flush=True)
                except (RuntimeError, OSError) as e:
                    srv.update(status="failed", reason=str(e))
                    print(f"  {name} FAILED: {e}", flush=True)
    except KeyboardInterrupt:
        result["interrupted"] = True
        bench.stop_all()
    for srv in result["servers"].values():
        srv["summary"] = _summary(srv["runs"]) if srv["runs"] else None
    result["ratios"] = {}
    subj = result["servers"].get(scen["subject"], {}).get("summary")
    for name, srv in result["servers"].items():
        if name == scen["subject"] or not subj or not srv.get("summary"):
            continue
        for n, s in srv["summary"].items():
            a = subj.get(n)
            if a and s["rss_kib_per_conn"] and s["pss_kib_per_conn"]:
                result["ratios"][f"{scen['subject']}/{name}@{n}"] = {
                    "connections": int(n), "rss": a["rss_kib_per_conn"] / s["rss_kib_per_conn"],
                    "pss": a["pss_kib_per_conn"] / s["pss_kib_per_conn"]}
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["finished_utc"] = now()
    md = table_md(result)
    print("\n" + md)
    if not opts.no_save and any(s["runs"] for s in result["servers"].values()):
        out = Path(opts.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        t = result["started_utc"]
        base = out / f"{t[:10]}T{t[11:13]}{t[14:16]}Z-{sname}"
        base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        base.with_suffix(".md").write_text(md)
        print(f"wrote {base}.json and .md")
    return result
