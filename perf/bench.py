#!/usr/bin/python3
"""Peer benchmark harness for hornbeam-uring (stdlib only; run with /usr/bin/python3).

Starts each server of a scenario on its own free 127.0.0.1 port, waits until it
answers correctly, runs a wrk warm-up (not counted) and a measured wrk run, stops
the server and all its children, and repeats round-robin (A B C D A B C D ...)
so machine noise hits every server alike. Prints median and spread per server
and hornbeam's ratio against each peer, and writes JSON + Markdown results to
perf/results/.

    /usr/bin/python3 perf/bench.py                       # scenario "hello", all servers
    /usr/bin/python3 perf/bench.py --servers nginx,gunicorn -d 3 -r 5
    /usr/bin/python3 perf/bench.py --scenario hello-asgi --pin
    /usr/bin/python3 perf/bench.py --list

Adding a scenario = one entry in SCENARIOS below (see perf/README.md).
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cgbench  # perf/cgbench.py: --callgrind
import idlebench  # perf/idlebench.py: the idle-http and idle-ws scenarios

PERF = Path(__file__).resolve().parent
REPO = PERF.parent
APPS = PERF / "apps"
PY = "/usr/bin/python3"  # Debian's python3: gunicorn and uvicorn come from Debian packages
WRK_LUA = PERF / "wrk_report.lua"
LOOPBACK = "127.0.0.1"  # the only address anything here ever binds or connects to


class Skip(Exception):
    """The server cannot run here (binary missing, ...): skip it with a message."""


# --------------------------------------------------------------------------------------
# Server launchers. Each returns build(ctx) -> argv; ctx has .port, .tmp (a private temp
# dir), .opts (parsed CLI options). Raise Skip to skip the server with a clear reason.
# --------------------------------------------------------------------------------------

DIST = "/usr/lib/python3/dist-packages"  # Debian's Flask/Django/Starlette/Jinja2 (pure Python)


def hornbeam(app, worker_class=None, frameworks=False):
    def build(ctx):
        binary = Path(ctx.opts.hornbeam_bin)
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise Skip(f"{binary} does not exist or is not executable "
                       "(build hornbeam-uring first, or pass --hornbeam-bin)")
        # --no-access-log: the access log is on by default, and every peer here runs without
        # one (gunicorn's is off by default, uvicorn --no-access-log, uWSGI --disable-logging,
        # nginx access_log off)
        cmd = [str(binary), app, "--bind", f"{LOOPBACK}:{ctx.port}",
               "--workers", str(ctx.opts.workers), "--pythonpath", str(APPS), "--no-access-log"]
        if frameworks:  # the embedded CPython does not search Debian's dist-packages itself
            cmd += ["--pythonpath", DIST]
        if worker_class:
            cmd += ["--worker-class", worker_class]
        return cmd
    return build


def nginx_conf(port, tmp, workers, listen="", server_extra=()):
    """perf/nginx.conf.tmpl for one run: 'return 200' hello on LOOPBACK:port, `workers` worker
    processes, `listen` parameters after the address ("ssl", "http2") and server_extra lines
    (ssl_certificate ...) at the top of the server block."""
    conf = (PERF / "nginx.conf.tmpl").read_text()
    conf = conf.replace("@PORT@", str(port)).replace("@TMP@", str(tmp))
    conf = conf.replace("worker_processes 2;", f"worker_processes {workers};")
    listen_line = f"listen {LOOPBACK}:{port};"
    if listen_line not in conf:
        raise RuntimeError(f"perf/nginx.conf.tmpl lacks '{listen_line}'")
    conf = conf.replace(listen_line, "\n        ".join(
        [f"listen {LOOPBACK}:{port} {listen};" if listen else listen_line] + list(server_extra)))
    return conf


def nginx_command(tmp):
    """nginx's command line for the nginx.conf in tmp; Skip when nginx is not installed."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(exe, os.X_OK):
        raise Skip("nginx not installed (apt-get install nginx-light)")
    return [exe, "-p", str(tmp), "-c", str(Path(tmp) / "nginx.conf"), "-e", "stderr"]


def nginx(static=None):
    """nginx: 'return 200' hello, or (static=N) N bytes of 'x' from a file in its temp dir."""
    def build(ctx):
        cmd = nginx_command(ctx.tmp)
        conf = nginx_conf(ctx.port, ctx.tmp, ctx.opts.workers)
        if static:
            # nginx's workers run as 'nobody' when started as root: let them reach the files
            www = ctx.tmp / "www"
            www.mkdir(mode=0o755)
            for d in (ctx.tmp.parent, ctx.tmp):
                os.chmod(d, 0o711)
            for name in ("64k", "1m"):
                (www / name).write_bytes(b"x" * static)
                os.chmod(www / name, 0o644)
            conf = conf.replace('return 200 "Hello, World!";', f"root {ctx.tmp / 'www'};")
        (ctx.tmp / "nginx.conf").write_text(conf)
        return cmd
    return build


def gunicorn(app, threads=4, worker_class="gthread"):
    def build(ctx):
        thr = ["--threads", str(threads)] if worker_class == "gthread" else []
        return [PY, "-m", "gunicorn", "--worker-class", worker_class,
                "--workers", str(ctx.opts.workers)] + thr + [
                "--bind", f"{LOOPBACK}:{ctx.port}", "--chdir", str(APPS),
                "--worker-tmp-dir", str(ctx.tmp), "--log-level", "warning",
                "--graceful-timeout", "3", app]
    return build


def uvicorn(app):
    def build(ctx):
        return [PY, "-m", "uvicorn", app, "--app-dir", str(APPS),
                "--host", LOOPBACK, "--port", str(ctx.port),
                "--workers", str(ctx.opts.workers), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning"]
    return build


def uwsgi(app, threads=4):
    """uWSGI (Debian's uwsgi + uwsgi-plugin-python3): native HTTP/1.1 keep-alive socket."""
    def build(ctx):
        exe = shutil.which("uwsgi") or "/usr/bin/uwsgi"
        if not os.access(exe, os.X_OK):
            raise Skip("uwsgi not installed (apt-get install uwsgi uwsgi-plugin-python3)")
        module, _, callable_ = app.partition(":")
        return [exe, "--plugin", "python3", "--http11-socket", f"{LOOPBACK}:{ctx.port}",
                "--module", module, "--callable", callable_ or "application",
                "--pythonpath", str(APPS), "--master", "--processes", str(ctx.opts.workers),
                "--threads", str(threads), "--die-on-term", "--disable-logging",
                "--buffer-size", "32768", "--post-buffering", "65536", "--listen", "1024"]
    return build


def hypercorn(app):
    def build(ctx):
        if not Path(DIST, "hypercorn").is_dir():
            raise Skip("hypercorn not installed (apt-get install python3-hypercorn)")
        ctx.env["PYTHONPATH"] = str(APPS)  # hypercorn 0.13 has no --app-dir
        return [PY, "-m", "hypercorn", app, "--bind", f"{LOOPBACK}:{ctx.port}",
                "--workers", str(ctx.opts.workers), "--worker-class", "uvloop",
                "--log-level", "warning", "--backlog", "1024"]
    return build


# --------------------------------------------------------------------------------------
# Scenarios: the table to extend. "subject" is compared against every other server.
#   path/expect: the probe GET must return 200 with exactly this body before wrk runs.
# --------------------------------------------------------------------------------------

HELLO = b"Hello, World!"

# wrk Lua snippets (perf/wrk_report.lua's done() is appended to each).
UPLOAD_LUA = """wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""
PIPELINE_LUA = """-- HTTP/1.1 pipelining: each wrk request() sends DEPTH requests in one write
local depth = 16 -- SCENARIOS["pipelined"]["pipeline"] (perf/cgbench.py) must match
init = function(args)
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, wrk.path) end
  req = table.concat(r)
end
request = function() return req end
"""


def _wsgi_peers(app, frameworks=False):
    """The WSGI servers, all running the same app."""
    return {"hornbeam": hornbeam(app, frameworks=frameworks),
            "gunicorn": gunicorn(app), "gunicorn-sync": gunicorn(app, worker_class="sync"),
            "uwsgi": uwsgi(app)}


def _asgi_peers(app, frameworks=False):
    return {"hornbeam": hornbeam(app, "asgi", frameworks=frameworks),
            "uvicorn": uvicorn(app), "hypercorn": hypercorn(app)}


HELLO_SERVERS = {
    "hornbeam": hornbeam("hello_wsgi:application"),
    "nginx": nginx(),
    "gunicorn": gunicorn("hello_wsgi:application"),
    "gunicorn-sync": gunicorn("hello_wsgi:application", worker_class="sync"),
    "uwsgi": uwsgi("hello_wsgi:application"),
    "uvicorn": uvicorn("hello_asgi:app"),
    "hypercorn": hypercorn("hello_asgi:app"),
}

SCENARIOS = {
    "hello": {
        "description": "GET / -> 200 text/plain 'Hello, World!' (13 bytes), HTTP/1.1 keep-alive. "
                       "hornbeam, gunicorn (gthread 4 threads, sync) and uWSGI run "
                       "perf/apps/hello_wsgi.py, uvicorn and hypercorn run perf/apps/hello_asgi.py, "
                       "nginx answers with 'return 200' (upper bound).",
        "path": "/",
        "expect": HELLO,
        "subject": "hornbeam",
        "servers": HELLO_SERVERS,
    },
    "hello-asgi": {
        "description": "Same hello response, ASGI on both sides: hornbeam --worker-class asgi "
                       "vs uvicorn (uvloop+httptools) and hypercorn (uvloop), nginx as the upper bound.",
        "path": "/",
        "expect": HELLO,
        "subject": "hornbeam",
        "servers": {"hornbeam": hornbeam("hello_asgi:app", "asgi"), "nginx": nginx(),
                    "uvicorn": uvicorn("hello_asgi:app"), "hypercorn": hypercorn("hello_asgi:app")},
    },
}
for _c in (10, 100, 1000):
    SCENARIOS[f"hello-c{_c}"] = {
        "description": f"The hello scenario (WSGI) at {_c} connections (overrides -c).",
        "path": "/", "expect": HELLO, "subject": "hornbeam", "connections": _c,
        "servers": {k: v for k, v in HELLO_SERVERS.items() if k not in ("uvicorn", "hypercorn")},
    }
SCENARIOS["pipelined"] = {
    "description": "Hello (WSGI), HTTP/1.1 pipelining: wrk sends 16 requests per write "
                   "(perf/bench.py PIPELINE_LUA); req/s counts responses.",
    "path": "/", "expect": HELLO, "subject": "hornbeam", "lua": PIPELINE_LUA, "pipeline": 16,
    "servers": {k: v for k, v in HELLO_SERVERS.items() if k not in ("uvicorn", "hypercorn")},
}
SCENARIOS["json"] = {
    "description": "GET /json -> json.dumps of a small dict (perf/apps/raw_wsgi.py).",
    "path": "/json", "contains": b'"message": "Hello, World!"', "subject": "hornbeam",
    "servers": _wsgi_peers("raw_wsgi:application"),
}
SCENARIOS["json-asgi"] = {
    "description": "GET /json -> json.dumps of a small dict, ASGI (perf/apps/raw_asgi.py).",
    "path": "/json", "contains": b'"message": "Hello, World!"', "subject": "hornbeam",
    "servers": _asgi_peers("raw_asgi:app"),
}
for _p, _n in (("/64k", 65536), ("/1m", 1048576)):
    _name = "resp-" + _p[1:]
    SCENARIOS[_name] = {
        "description": f"GET {_p} -> {_n:,} bytes text/plain from perf/apps/raw_wsgi.py "
                       f"(nginx serves the same bytes from a file).",
        "path": _p, "expect": b"x" * _n, "subject": "hornbeam",
        "servers": dict(_wsgi_peers("raw_wsgi:application"), nginx=nginx(static=_n)),
    }
SCENARIOS["upload-1m"] = {
    "description": "POST /upload with a 1 MiB body (wrk Lua, perf/bench.py UPLOAD_LUA); the app "
                   "reads it all and answers its length (perf/apps/raw_wsgi.py).",
    "path": "/upload", "expect": b"0", "subject": "hornbeam", "lua": UPLOAD_LUA,
    "servers": _wsgi_peers("raw_wsgi:application"),
}
SCENARIOS["asgi-sleep"] = {
    "description": "An I/O-bound ASGI handler: GET /sleep awaits asyncio.sleep(0.01) "
                   "(perf/apps/raw_asgi.py). Run it with -c 100 or more; at 64 connections "
                   "the ceiling is 6,400 req/s.",
    "path": "/sleep", "expect": HELLO, "subject": "hornbeam",
    "servers": _asgi_peers("raw_asgi:app"),
}
for _fw, _mod, _peers in (("flask", "flask_bench:app", _wsgi_peers),
                          ("django", "djbench.wsgi:application", _wsgi_peers),
                          ("starlette", "starlette_bench:app", _asgi_peers)):
    SCENARIOS[_fw] = {
        "description": f"{_fw.title()} app perf/apps/{_mod.split(':')[0].split('.')[0]}: "
                       "GET /hello/bench, routing with a path parameter + a Jinja2/Django "
                       "template (perf/apps/templates/hello.html), ~250 bytes of HTML.",
        "path": "/hello/bench", "contains": b"<h1>Hello, bench!</h1>", "subject": "hornbeam",
        "servers": _peers(_mod, frameworks=True),
    }
    SCENARIOS[f"{_fw}-json"] = {
        "description": f"{_fw.title()} app: GET /json, the framework's JSON response of a small dict.",
        "path": "/json", "contains": b"Hello, World!", "subject": "hornbeam",
        "servers": _peers(_mod, frameworks=True),
    }
SCENARIOS["ws-echo"] = {
    "description": "WebSocket echo: 64 connections each send a 32-byte text message and wait "
                   "for its echo, over and over (perf/ws/wsload.c; wrk does not speak "
                   "WebSocket). Rates are messages/s. Both servers run perf/apps/echo_asgi.py.",
    "path": "/",
    "expect": b"ok",
    "subject": "hornbeam",
    "client": "wsload",
    "ws_path": "/ws",
    "servers": {
        "hornbeam": hornbeam("echo_asgi:app", worker_class="asgi"),
        "uvicorn": uvicorn("echo_asgi:app"),
    },
}
SCENARIOS["ws-broadcast"] = {
    "description": "WebSocket broadcast: 100 connections subscribe to one topic, one of them "
                   "publishes 64-byte text messages (8 in flight), every message goes to all 100 "
                   "(perf/ws/wsfanout.c, perf/apps/broadcast_asgi.py: hornbeam_erlang.publish on "
                   "hornbeam, an in-process asyncio fan-out on uvicorn). Rates are published "
                   "messages/s (x100 deliveries); p50/p99 from publish to the last delivery.",
    "path": "/", "expect": b"ok", "subject": "hornbeam", "client": "wsfanout", "ws_path": "/ws",
    "connections": 100,
    "servers": {"hornbeam": hornbeam("broadcast_asgi:app", worker_class="asgi"),
                "uvicorn": uvicorn("broadcast_asgi:app")},
}
SCENARIOS.update(idlebench.scenarios(hornbeam, nginx, uvicorn))


# --------------------------------------------------------------------------------------
# Process handling: every process we start is tracked and killed, with its whole tree.
# --------------------------------------------------------------------------------------

LIVE = []  # Popen objects still possibly running


def _proc_stat(pid):
    """(ppid, pgrp, session, starttime) of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0]=state [1]=ppid [2]=pgrp [3]=session ... [19]=starttime
    if rest[0] in ("Z", "X"):
        return None  # dead; a zombie whose reaper is slow must not hold up stop()
    return int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19])


def _tree(root):
    """Snapshot of {pid: starttime} for root's session/process group and all descendants."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st:
                stats[int(name)] = st
    found = {pid: st[3] for pid, st in stats.items() if st[1] == root or st[2] == root}
    changed = True
    while changed:
        changed = False
        for pid, st in stats.items():
            if pid not in found and st[0] in found:
                found[pid] = st[3]
                changed = True
    return found


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root):
    """{(pid, starttime): utime+stime ticks} for root's tree (all threads included)."""
    out = {}
    for pid, start in _tree(root).items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        out[(pid, start)] = int(rest[11]) + int(rest[12])
    return out


def tree_memory(root):
    """RSS and PSS (KiB) summed over root's tree at this moment (PSS splits shared pages)."""
    rss = pss = 0
    for pid in _tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return {"server_rss_kib": rss, "server_pss_kib": pss}


def tree_affinity(root):
    """Distinct Cpus_allowed_list of every thread of root's tree (proves the pinning)."""
    seen = set()
    for pid in _tree(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("Cpus_allowed_list:"):
                            seen.add(line.split(":", 1)[1].strip())
            except OSError:
                pass
    return sorted(seen)


SYSCALL_EVENTS = ("syscalls:sys_enter_io_uring_enter", "raw_syscalls:sys_enter")


def count_syscalls(root, run, secs):
    """A separate short load run with `perf stat` attached to every process of the tree:
    io_uring_enter and all syscalls per request. {} when perf cannot count here."""
    if not shutil.which("perf"):
        return {"syscalls_note": "perf not installed (apt-get install linux-perf)"}
    pids = ",".join(str(x) for x in sorted(_tree(root)))
    cmd = ["perf", "stat", "-x", ",", "-e", ",".join(SYSCALL_EVENTS), "-p", pids,
           "--", "sleep", str(secs + 1)]
    pp = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, process_group=0)
    LIVE.append(pp)
    try:
        time.sleep(0.3)  # perf attaches
        res = run(secs)
        _, err = pp.communicate(timeout=secs + 15)
    except (subprocess.TimeoutExpired, RuntimeError) as e:
        stop(pp, grace=1.0)
        return {"syscalls_note": f"syscall count failed: {e}"}
    if pp in LIVE:
        LIVE.remove(pp)
    counts = {}
    for line in err.decode(errors="replace").splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2] in SYSCALL_EVENTS and f[0].strip().isdigit():
            counts[f[2]] = int(f[0])
    if len(counts) != len(SYSCALL_EVENTS) or not res["requests"]:
        return {"syscalls_note": "perf stat gave no counts: " + err.decode(errors="replace")[-300:]}
    # the run covers secs of the secs+1 that perf counted: idle syscalls outside it are few
    return {"syscall_run_requests": res["requests"],
            "io_uring_enter_per_req": counts[SYSCALL_EVENTS[0]] / res["requests"],
            "syscalls_per_req": counts[SYSCALL_EVENTS[1]] / res["requests"]}


def cpu_seconds(before, after):
    """CPU seconds the tree used between two tree_cpu() snapshots (new processes count fully)."""
    return sum(t - before.get(k, 0) for k, t in after.items()) / CLK_TCK


def _kill_snapshot(snap, sig):
    for pid, start in snap.items():
        st = _proc_stat(pid)
        if st and st[3] == start:  # same process, not a reused pid
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def spawn(cmd, log_path=None, env=None, cwd=None, capture=False):
    out = subprocess.PIPE if capture else open(log_path, "wb")
    # A process group (not a new session): stop() kills the group, and every process stays in
    # our session's scheduler autogroup. A session per process would give the server and wrk
    # one CPU-fair group each (kernel.sched_autogroup_enabled=1 here), which caps a server at
    # half the machine in a way no service manager or Kubernetes pod does; it halved
    # hornbeam-uring (4 threads) and skewed every peer.
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         process_group=0, env=env, cwd=cwd)
    if not capture:
        out.close()
    LIVE.append(p)
    return p


def stop(p, grace=5.0):
    """SIGTERM the process group (and any escaped descendants), then SIGKILL what is left."""
    snap = _tree(p.pid)
    snap.setdefault(p.pid, None)
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except OSError:
        pass
    _kill_snapshot({k: v for k, v in snap.items() if v is not None}, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if p.poll() is not None and not any(
                (_proc_stat(pid) or (0, 0, 0, -1))[3] == st for pid, st in snap.items() if st):
            break
        time.sleep(0.05)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    _kill_snapshot({k: v for k, v in snap.items() if v is not None}, signal.SIGKILL)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if p in LIVE:
        LIVE.remove(p)


def stop_all():
    for p in list(LIVE):
        stop(p, grace=3.0)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def probe(port, path, timeout=1.0):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def tail(path, n=15):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + l for l in lines[-n:])


def pin_prefix(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def cmd_output(cmd, timeout=5):
    """First line of a version command; best effort, never leaves a process behind."""
    try:
        p = spawn(cmd, capture=True)
    except OSError as e:
        return f"unavailable ({e})"
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out = b"unavailable (timed out)"
    finally:
        stop(p, grace=1.0)
    lines = out.decode(errors="replace").strip().splitlines()
    return lines[0][:200] if lines else ""


def versions(servers, opts):
    v = {"wrk": cmd_output(["wrk", "-v"]) if shutil.which("wrk") else "missing"}
    for s in servers:
        if s == "nginx":
            v[s] = cmd_output([shutil.which("nginx") or "/usr/sbin/nginx", "-v"])
        elif s == "gunicorn":
            v[s] = cmd_output([PY, "-m", "gunicorn", "--version"]).replace("__main__.py", "gunicorn")
        elif s == "uvicorn":
            v[s] = cmd_output([PY, "-c", "import uvicorn,uvloop,httptools,sys;"
                               "print('uvicorn', uvicorn.__version__, 'uvloop', uvloop.__version__,"
                               "'httptools', httptools.__version__, 'python', sys.version.split()[0])"])
        elif s == "hornbeam":
            b = opts.hornbeam_bin
            v[s] = cmd_output([b, "--version"]) if os.access(b, os.X_OK) else "missing"
    return v


def machine_info():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "allowed_cpus": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "cpu_model": cpu,
        "mem_total_mib": mem,
        "os": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def fmt_us(us):
    return "-" if us is None else f"{us:.1f}"


def fmt_mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


def fmt_x(x):
    return "-" if x is None else f"{x:.2f}"


def fmt_ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


# --------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------

def wrk_script(scen, tmp_root):
    """The scenario's Lua (upload, pipelining) + the report hook, as one file for wrk -s."""
    if not scen.get("lua"):
        return WRK_LUA
    path = Path(tmp_root) / f"wrk-{abs(hash(scen['lua']))}.lua"
    if not path.exists():
        path.write_text(scen["lua"] + "\n" + WRK_LUA.read_text())
    return path


def run_wrk(url, opts, duration, connections=None, script=WRK_LUA):
    conns = connections or opts.connections
    cmd = pin_prefix(opts.wrk_cpus) + [
        "wrk", f"-t{min(opts.threads, conns)}", f"-c{conns}", f"-d{duration}s",
        "--latency", "--timeout", f"{opts.wrk_timeout}s", "-s", str(script), url]
    p = spawn(cmd, capture=True)
    try:
        out, _ = p.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        stop(p, grace=1.0)
        raise RuntimeError("wrk did not finish in time")
    if p in LIVE:
        LIVE.remove(p)
    text = out.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}: {text.strip()[-500:]}")
    data = None
    rps_text = None
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON "):])
        elif line.startswith("Requests/sec:"):
            rps_text = float(line.split()[1])
    if data is None:
        raise RuntimeError(f"could not parse wrk output:\n{text}")
    secs = data["duration_us"] / 1e6
    data["rps"] = data["requests"] / secs if secs else 0.0
    data["rps_wrk"] = rps_text
    data["socket_errors"] = (data["err_connect"] + data["err_read"]
                             + data["err_write"] + data["err_timeout"])
    data["non_2xx_3xx"] = data["err_status"]
    data["bytes_per_response"] = data["bytes"] / data["requests"] if data["requests"] else None
    return data


# --------------------------------------------------------------------------------------
# One measured run of one server
# --------------------------------------------------------------------------------------

WS_DIR = PERF / "ws"


def ws_binary(name, tmp_root):
    """Compiles perf/ws/<name>.c (with the shared wsclient.c) once per run into the run's temp
    dir."""
    exe = Path(tmp_root) / name
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-o", str(exe), str(WS_DIR / f"{name}.c"),
                        str(WS_DIR / "wsclient.c")], check=True)
    return exe


def run_ws_client(name, args, opts, duration, timeout, tmp_root):
    """One run of perf/ws/<name> against a server: its "key: value" report lines as a dict,
    with the common fields shaped like run_wrk's result (messages count as requests)."""
    cmd = pin_prefix(opts.wrk_cpus) + [str(ws_binary(name, tmp_root))] + args
    p = spawn(cmd, capture=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p, grace=1.0)
        raise RuntimeError(f"{name} did not finish in time")
    if p in LIVE:
        LIVE.remove(p)
    text = out.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{name} exited {p.returncode}: {text.strip()[-500:]}")
    vals = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    rate = float(vals["messages/s"])
    return vals, {"rps": rate, "requests": int(rate * duration), "duration_us": duration * 1e6,
                  "p50_us": float(vals["p50_ms"]) * 1000, "p99_us": float(vals["p99_ms"]) * 1000,
                  "socket_errors": 0, "non_2xx_3xx": 0}


def run_wsload(port, scen, opts, duration, tmp_root):
    """One wsload run (perf/ws/wsload.c): echo round trips."""
    args = ["-h", LOOPBACK, "-p", str(port), "-P", scen["ws_path"],
            "-c", str(opts.connections), "-d", str(duration), "-s", "32"]
    return run_ws_client("wsload", args, opts, duration, duration + 30, tmp_root)[1]


def run_wsfanout(port, scen, opts, duration, tmp_root):
    """One wsfanout run: published messages count as requests (each reaches every connection)."""
    conns = scen.get("connections", opts.connections)
    args = ["-h", LOOPBACK, "-p", str(port), "-P", scen["ws_path"],
            "-c", str(conns), "-d", str(duration), "-s", "64", "-W", "8"]
    vals, res = run_ws_client("wsfanout", args, opts, duration, duration + 60, tmp_root)
    res["deliveries_per_s"] = float(vals["deliveries/s"])
    return res


class Ctx:
    def __init__(self, port, tmp, opts):
        self.port, self.tmp, self.opts = port, tmp, opts
        self.env = {}  # extra environment a launcher needs


def start_server(name, build, scen, opts, tmp_root, tag):
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}-{tag}-", dir=tmp_root))
    port = free_port()
    ctx = Ctx(port, tmp, opts)
    cmd = build(ctx)  # may raise Skip
    extra = opts.extra_args.get(name)
    if extra:
        cmd += shlex.split(extra)
    cmd = pin_prefix(opts.server_cpus) + cmd
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(k, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(ctx.env)
    log = tmp_root / f"{name}-{tag}.log"
    p = spawn(cmd, log_path=log, env=env, cwd=str(REPO))
    deadline = time.monotonic() + opts.start_timeout
    last_err = None
    while True:
        if p.poll() is not None:
            stop(p)
            raise StartExit(f"exited with status {p.returncode} during start-up\n{tail(log)}")
        try:
            status, headers, body = probe(port, scen["path"])
            if status == 200 and (body == scen["expect"] if "expect" in scen
                                  else scen["contains"] in body):
                return p, port, cmd, log, headers
            last_err = f"unexpected response {status} {body[:80]!r}"
        except OSError as e:
            last_err = str(e)
        except http.client.HTTPException as e:
            last_err = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            stop(p)
            raise RuntimeError(f"did not answer correctly within {opts.start_timeout}s "
                               f"(last: {last_err})\n{tail(log)}")
        time.sleep(0.05)


class StartExit(RuntimeError):
    """The server exited during start-up (possibly a lost race for its port)."""


def one_run(name, build, scen, opts, tmp_root, rep):
    try:
        p, port, cmd, log, headers = start_server(name, build, scen, opts, tmp_root, f"r{rep}")
    except StartExit:  # retry once on a fresh port; a real failure fails again, fast
        p, port, cmd, log, headers = start_server(name, build, scen, opts, tmp_root, f"r{rep}b")
    try:
        url = f"http://{LOOPBACK}:{port}{scen['path']}"
        if scen.get("client") == "wsload":
            run = lambda secs: run_wsload(port, scen, opts, secs, tmp_root)  # noqa: E731
        elif scen.get("client") == "wsfanout":
            run = lambda secs: run_wsfanout(port, scen, opts, secs, tmp_root)  # noqa: E731
        else:
            script = wrk_script(scen, tmp_root)
            run = lambda secs: run_wrk(url, opts, secs, scen.get("connections"), script)  # noqa: E731
        if opts.warmup > 0:
            run(opts.warmup)
        cpu0 = tree_cpu(p.pid)
        load0 = os.getloadavg()[0]
        res = run(opts.duration)
        cpu = cpu_seconds(cpu0, tree_cpu(p.pid))
        res["server_cpu_s"] = cpu
        res["server_cpu_us_per_req"] = cpu * 1e6 / res["requests"] if res["requests"] else None
        res["loadavg_1m_before"] = load0
        res.update(tree_memory(p.pid))
        res["cpus_allowed"] = tree_affinity(p.pid)
        if opts.syscall_secs > 0 and p.poll() is None:
            res.update(count_syscalls(p.pid, run, opts.syscall_secs))
        if p.poll() is not None:
            res["server_exited"] = p.returncode
            res["server_log_tail"] = tail(log)
        res.update({"repeat": rep, "port": port, "cmd": cmd,
                    "response_headers": [list(h) for h in headers]})
        return res
    finally:
        stop(p)


# --------------------------------------------------------------------------------------
# Summary, table, files
# --------------------------------------------------------------------------------------

def _median_opt(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs):
    if not runs:
        return None
    rps = [r["rps"] for r in runs]
    p99 = [r["p99_us"] for r in runs]
    p50 = [r["p50_us"] for r in runs]
    med = statistics.median(rps)
    s = {
        "runs": len(runs),
        "rps_median": med,
        "rps_min": min(rps),
        "rps_max": max(rps),
        "rps_spread_pct": (max(rps) - min(rps)) / med * 100 if med else None,
        "p50_us_median": statistics.median(p50),
        "cpu_us_per_req_median": _median_opt([r.get("server_cpu_us_per_req") for r in runs]),
        "p99_us_median": statistics.median(p99),
        "p99_us_min": min(p99),
        "p99_us_max": max(p99),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "rss_kib_median": _median_opt([r.get("server_rss_kib") for r in runs]),
        "pss_kib_median": _median_opt([r.get("server_pss_kib") for r in runs]),
        "io_uring_enter_per_req_median": _median_opt([r.get("io_uring_enter_per_req") for r in runs]),
        "syscalls_per_req_median": _median_opt([r.get("syscalls_per_req") for r in runs]),
    }
    if len(rps) >= 4:
        q = statistics.quantiles(rps, n=4)
        s["rps_iqr"] = [q[0], q[2]]
    return s


def ratios(result):
    subj = result["subject"]
    out = {}
    if subj not in result["servers"]:
        return out  # subject not selected: nothing to compare against
    ss = result["servers"].get(subj, {}).get("summary")
    for name, srv in result["servers"].items():
        if name == subj:
            continue
        ps = srv.get("summary")
        key = f"{subj}/{name}"
        if ss and ps and ps["rps_median"]:
            sc, pc = ss.get("cpu_us_per_req_median"), ps.get("cpu_us_per_req_median")
            out[key] = {"rps": ss["rps_median"] / ps["rps_median"],
                        "p99": ss["p99_us_median"] / ps["p99_us_median"] if ps["p99_us_median"] else None,
                        "cpu": sc / pc if sc and pc else None}
        else:
            why = f"{subj} {result['servers'].get(subj, {}).get('status', 'not run')}" if not ss \
                else f"{name} {srv.get('status')}"
            out[key] = {"rps": None, "p99": None, "why": why}
    return out


def table_md(result):
    cfg = result["config"]
    m = result["machine"]
    lines = [
        f"# {result['scenario']} — {result['started_utc']}",
        "",
        result["description"],
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
        f"load avg at start {m['loadavg_start'][0]:.2f}, end {m.get('loadavg_end', [0])[0]:.2f}.  ",
        f"{cfg.get('mode', 'shared')} mode; wrk -t{cfg['threads']} -c{cfg['connections']} -d{cfg['duration']}s (+{cfg['warmup']}s warm-up), "
        f"{cfg['repeats']} repeats interleaved, {cfg['workers']} workers per server, "
        f"pin: {'server CPUs ' + cfg['server_cpus'] + ', wrk CPUs ' + cfg['wrk_cpus'] if cfg['pin'] else 'off'}."
        + ("  \n**Interrupted: partial results.**" if result.get("interrupted") else ""),
        "",
        "| server | req/s median | min–max | spread | p50 ms | p99 ms median (min–max) | server CPU µs/req | RSS MiB (PSS) | io_uring_enter/req | syscalls/req | socket err | non-2xx | runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, srv in result["servers"].items():
        s = srv.get("summary")
        if not s:
            lines.append(f"| {name} | {srv['status']}: {srv.get('reason', '').splitlines()[0] if srv.get('reason') else ''} "
                         "| | | | | | | | | | | 0 |")
            continue
        lines.append(
            f"| {name} | {s['rps_median']:,.0f} | {s['rps_min']:,.0f}–{s['rps_max']:,.0f} | "
            f"±{s['rps_spread_pct'] / 2:.1f}% | {fmt_ms(s['p50_us_median'])} | "
            f"{fmt_ms(s['p99_us_median'])} ({fmt_ms(s['p99_us_min'])}–{fmt_ms(s['p99_us_max'])}) | "
            f"{fmt_us(s['cpu_us_per_req_median'])} | {fmt_mib(s.get('rss_kib_median'))} "
            f"({fmt_mib(s.get('pss_kib_median'))}) | {fmt_x(s.get('io_uring_enter_per_req_median'))} | "
            f"{fmt_x(s.get('syscalls_per_req_median'))} | "
            f"{s['socket_errors']} | {s['non_2xx_3xx']} | {s['runs']} |")
    lines += ["", "| ratio | req/s (higher is better) | p99 (lower is better) | CPU/req (lower is better) |",
              "|---|---:|---:|---:|"]
    for k, r in result["ratios"].items():
        if r["rps"] is None:
            lines.append(f"| {k} | n/a ({r['why']}) | | |")
        else:
            lines.append(f"| {k} | {fmt_x(r['rps'])} | {fmt_x(r['p99'])} | {fmt_x(r.get('cpu'))} |")
    if "callgrind" in result:
        lines.append(cgbench.table_md(result["callgrind"]))
    return "\n".join(lines) + "\n"


def print_table(result):
    print()
    hdr = f"{'server':<13} {'req/s med':>11} {'min–max':>19} {'spread':>8} {'p50 ms':>7} {'p99 ms':>8} {'cpu µs/req':>10} {'RSS MiB':>7} {'uring/req':>9} {'sys/req':>7} {'sockerr':>7} {'non2xx':>6} {'runs':>4}"
    print(f"scenario {result['scenario']}: wrk -t{result['config']['threads']} "
          f"-c{result['config']['connections']} ({result['config']['mode']}) -d{result['config']['duration']}s, "
          f"{result['config']['repeats']} repeats")
    print(hdr)
    print("-" * len(hdr))
    for name, srv in result["servers"].items():
        s = srv.get("summary")
        if not s:
            reason = (srv.get("reason") or "").splitlines()[0] if srv.get("reason") else ""
            print(f"{name:<13} {srv['status'].upper()}: {reason}")
            continue
        mm = f"{s['rps_min']:,.0f}–{s['rps_max']:,.0f}"
        print(f"{name:<13} {s['rps_median']:>11,.0f} {mm:>19} {'±%.1f%%' % (s['rps_spread_pct'] / 2):>8} "
              f"{fmt_ms(s['p50_us_median']):>7} {fmt_ms(s['p99_us_median']):>8} "
              f"{fmt_us(s['cpu_us_per_req_median']):>10} {fmt_mib(s.get('rss_kib_median')):>7} "
              f"{fmt_x(s.get('io_uring_enter_per_req_median')):>9} {fmt_x(s.get('syscalls_per_req_median')):>7} "
              f"{s['socket_errors']:>7} {s['non_2xx_3xx']:>6} {s['runs']:>4}")
    print()
    if not result["ratios"]:
        print(f"(no ratios: {result['subject']} not selected)")
    for k, r in result["ratios"].items():
        if r["rps"] is None:
            print(f"{k:<22} n/a ({r['why']})")
        else:
            print(f"{k:<20} req/s x{fmt_x(r['rps'])}   p99 x{fmt_x(r['p99'])}   cpu/req x{fmt_x(r.get('cpu'))}")


def save(result, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    t = result["started_utc"]  # 2026-11-26T10:30:12Z -> 2026-11-26T1030Z-<scenario>
    base = out_dir / f"{t[:10]}T{t[11:13]}{t[14:16]}Z-{result['scenario']}"
    base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    base.with_suffix(".md").write_text(table_md(result))
    return base.with_suffix(".json"), base.with_suffix(".md")


def chart(results, path):
    """One PNG: req/s (bars) and p99 (bars) per scenario and server. None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: python3-matplotlib is not installed (scripts/setup.sh --perf)")
        return None
    results = [r for r in results if any((s.get("summary") or {}).get("rps_median")
                                         for s in r["servers"].values())]
    if not results:
        return None
    servers = []
    for r in results:
        servers += [n for n in r["servers"] if n not in servers]
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(servers)}
    fig, axes = plt.subplots(2, len(results), figsize=(max(6, 3.2 * len(results)), 7), squeeze=False)
    for col, r in enumerate(results):
        names = [n for n, s in r["servers"].items() if s.get("summary")]
        sm = [r["servers"][n]["summary"] for n in names]
        for row, (key, label, scale) in enumerate((("rps_median", "req/s (median)", 1),
                                                   ("p99_us_median", "p99 ms (median)", 1000))):
            ax = axes[row][col]
            vals = [s[key] / scale for s in sm]
            ax.bar(range(len(names)), vals, color=[colors[n] for n in names])
            if row == 0:  # the min-max range of req/s over the repeats
                ax.errorbar(range(len(names)), vals, fmt="none", ecolor="black", capsize=3,
                            yerr=[[v - s["rps_min"] for v, s in zip(vals, sm)],
                                  [s["rps_max"] - v for v, s in zip(vals, sm)]])
                ax.set_title(r["scenario"], fontsize=9)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
    cfg = results[0]["config"]
    fig.suptitle(f"hornbeam-uring vs peers, {cfg['mode']} mode, {cfg['repeats']} x {cfg['duration']} s, "
                 f"{results[0]['started_utc']} (bars: median req/s with min-max, p99)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def run_callgrind(result, scen, opts, tmp_root):
    """--callgrind: instructions per request of the subject (perf/cgbench.py)."""
    subj = result["subject"]
    if not cgbench.supported(scen):
        print(f"callgrind: scenario {result['scenario']} not supported (needs a plain GET)", flush=True)
        return
    print(f"  callgrind: {subj} under valgrind, {opts.callgrind_warmup} + "
          f"{opts.callgrind_requests} requests ...", flush=True)
    try:
        result["callgrind"] = cgbench.measure(sys.modules[__name__], subj, scen, opts, tmp_root)
    except (Skip, RuntimeError, OSError, subprocess.SubprocessError) as e:
        result["callgrind"] = {"server": subj, "error": str(e)}


def scenario_servers(sname, scen, opts):
    """The servers to run in scen: --servers' that it has, in their order (a run of several
    scenarios names the union; each runs its own), else all of its own. Exits when none is
    left, or when one scenario was asked for with a server it does not have."""
    if not opts.servers:
        return [scen["subject"]] if opts.callgrind_only else list(scen["servers"])
    names = [n for n in opts.servers if n in scen["servers"]]
    unknown = [n for n in opts.servers if n not in scen["servers"]]
    if unknown and (not names or len(opts.scenarios) == 1):
        sys.exit(f"scenario {sname!r} has no server(s) {unknown}; it has {list(scen['servers'])}")
    if unknown:
        print(f"== scenario {sname}: no {', '.join(unknown)} here, running {', '.join(names)}",
              flush=True)
    return names


def run_scenario(sname, opts, tmp_root):
    scen = SCENARIOS[sname]
    if scen.get("client") == "idle":
        return idlebench.run_scenario(sys.modules[__name__], sname, scen, opts, tmp_root)
    names = scenario_servers(sname, scen, opts)
    result = {
        "scenario": sname,
        "description": scen["description"],
        "subject": scen["subject"],
        "started_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "config": {"threads": opts.threads, "connections": scen.get("connections", opts.connections),
                   "mode": "shared" if opts.shared else "pinned",
                   "duration": opts.duration, "warmup": opts.warmup, "repeats": opts.repeats,
                   "workers": opts.workers, "pin": bool(opts.server_cpus),
                   "server_cpus": opts.server_cpus, "wrk_cpus": opts.wrk_cpus,
                   "wrk_timeout": opts.wrk_timeout, "order": names},
        "versions": versions(names, opts),
        "servers": {n: {"status": "pending", "runs": []} for n in names},
        "interrupted": False,
    }
    load, ncpu = os.getloadavg()[0], len(os.sched_getaffinity(0))
    if load > 0.5 * ncpu:
        print(f"warning: load average {load:.2f} on {ncpu} CPUs: the machine is busy, expect noisy "
              "numbers (compare ratios and CPU/req, or rerun with more repeats)", flush=True)
    print(f"== scenario {sname}: {', '.join(names)}; {opts.repeats} x {opts.duration}s "
          f"(+{opts.warmup}s warm-up) each, wrk -t{opts.threads} -c{opts.connections}"
          + (f"; pinned: servers on CPU {opts.server_cpus}, wrk on CPU {opts.wrk_cpus}"
             if opts.server_cpus else ""), flush=True)
    try:
        for rep in range(1, opts.repeats + 1):
            for name in names:
                srv = result["servers"][name]
                if srv["status"] in ("skipped", "failed"):
                    continue
                try:
                    res = one_run(name, scen["servers"][name], scen, opts, tmp_root, rep)
                except Skip as e:
                    srv.update(status="skipped", reason=str(e))
                    print(f"  [{rep}/{opts.repeats}] {name:<9} SKIPPED: {e}", flush=True)
                    continue
                except RuntimeError as e:
                    srv.update(status="failed", reason=str(e))
                    print(f"  [{rep}/{opts.repeats}] {name:<9} FAILED, skipping it: {e}", flush=True)
                    continue
                srv["status"] = "ok"
                srv["runs"].append(res)
                warn = ""
                if res["socket_errors"] or res["non_2xx_3xx"]:
                    warn = f"  errors: socket {res['socket_errors']} non-2xx {res['non_2xx_3xx']}"
                if "server_exited" in res:
                    warn += f"  SERVER EXITED ({res['server_exited']}) during the run"
                print(f"  [{rep}/{opts.repeats}] {name:<9} {res['rps']:>10,.0f} req/s  "
                      f"p50 {fmt_ms(res['p50_us'])} ms  p99 {fmt_ms(res['p99_us'])} ms{warn}", flush=True)
    except KeyboardInterrupt:
        result["interrupted"] = True
        print("\ninterrupted: stopping servers, keeping partial results", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_all()
    for srv in result["servers"].values():
        srv["summary"] = summarize(srv["runs"])
        if srv["status"] == "pending":
            srv["status"] = "not run"
            srv["reason"] = "interrupted" if result["interrupted"] else ""
    result["ratios"] = ratios(result)
    if opts.callgrind and not result["interrupted"]:
        run_callgrind(result, scen, opts, tmp_root)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print_table(result)
    if "callgrind" in result:
        cgbench.print_summary(result["callgrind"])
    if not opts.no_save and (any(s["runs"] for s in result["servers"].values()) or "callgrind" in result):
        j, m = save(result, Path(opts.out_dir))
        print(f"\nwrote {j.relative_to(REPO) if j.is_relative_to(REPO) else j} and {m.name}")
    return result


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="hello", help="comma list of scenarios, or all (default hello; see --list)")
    ap.add_argument("--servers", help="comma list of servers to run, in this order (default: all of the scenario)")
    ap.add_argument("-t", "--threads", type=int, help="wrk threads (default 1; 2 with --shared)")
    ap.add_argument("-c", "--connections", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("-d", "--duration", type=int, default=5, help="measured seconds per run (default 5)")
    ap.add_argument("-w", "--warmup", type=int, default=1, help="warm-up seconds per run, not counted (default 1; 0 = none)")
    ap.add_argument("-r", "--repeats", type=int, default=3, help="runs per server, interleaved round-robin (default 3)")
    ap.add_argument("--workers", type=int, help="workers/processes per server (default 1; 2 with --shared)")
    ap.add_argument("--shared", action="store_true",
                    help="no pinning: servers with 2 workers and wrk share all CPUs (the old default)")
    ap.add_argument("--syscall-secs", type=int, default=2,
                    help="seconds of a separate load run per server with perf stat attached, "
                         "counting io_uring_enter and all syscalls per request (default 2; 0 = off)")
    ap.add_argument("--chart", action=argparse.BooleanOptionalAction, default=True,
                    help="write a PNG chart per run (needs python3-matplotlib; default on)")
    ap.add_argument("--wrk-timeout", type=int, default=2, help="wrk per-request timeout in seconds (default 2)")
    ap.add_argument("--pin", action="store_true",
                    help="pinning is the default now; kept so old command lines still work")
    ap.add_argument("--server-cpus", help="taskset CPU list for servers (implies --pin)")
    ap.add_argument("--wrk-cpus", help="taskset CPU list for wrk (implies --pin)")
    ap.add_argument("--start-timeout", type=float, default=20.0, help="seconds a server may take to answer (default 20)")
    ap.add_argument("--hornbeam-bin", default=str(REPO / "build" / "hornbeam-uring"),
                    help="hornbeam-uring binary (default build/hornbeam-uring)")
    ap.add_argument("--extra-args", action="append", default=[], metavar="SERVER=ARGS",
                    help="extra CLI args for one server, e.g. --extra-args 'hornbeam=--threads 2'")
    ap.add_argument("--out-dir", default=str(PERF / "results"), help="where to write results (default perf/results)")
    ap.add_argument("--no-save", action="store_true", help="print only, write no result files")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temp dir with server logs")
    ap.add_argument("--list", action="store_true", help="list scenarios and servers and exit")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions per request of hornbeam under callgrind "
                         "(perf/cgbench.py; plain-GET scenarios)")
    ap.add_argument("--idle-connections", default="10000",
                    help="idle-http/idle-ws: comma list of connection counts (default 10000; at most "
                         "19000 with this sandbox's 20000 descriptors per process)")
    ap.add_argument("--idle-settle", type=float, default=2.0,
                    help="idle-http/idle-ws: seconds to wait before measuring memory (default 2)")
    ap.add_argument("--callgrind-only", action="store_true",
                    help="only the callgrind measurement, no wrk runs (implies --callgrind)")
    ap.add_argument("--callgrind-requests", type=int, default=5000,
                    help="requests counted under callgrind (default 5000)")
    ap.add_argument("--callgrind-warmup", type=int, default=500,
                    help="requests sent under callgrind before the counters are zeroed (default 500)")
    opts = ap.parse_args(argv)
    opts.servers = [s.strip() for s in opts.servers.split(",") if s.strip()] if opts.servers else None
    opts.idle_connections = [int(x) for x in opts.idle_connections.split(",") if x.strip()]
    if not opts.idle_connections or min(opts.idle_connections) <= idlebench.BASE:
        ap.error(f"--idle-connections: counts above {idlebench.BASE}")
    opts.scenarios = [s.strip() for s in opts.scenario.split(",") if s.strip()]
    if opts.scenarios == ["all"]:
        opts.scenarios = list(SCENARIOS)
    extra = {}
    for e in opts.extra_args:
        k, _, v = e.partition("=")
        extra[k] = (extra.get(k, "") + " " + v).strip()
    opts.extra_args = extra
    if opts.shared and (opts.pin or opts.server_cpus or opts.wrk_cpus):
        ap.error("--shared runs unpinned: it excludes --pin/--server-cpus/--wrk-cpus")
    if opts.workers is None:
        opts.workers = 2 if opts.shared else 1
    if opts.threads is None:
        opts.threads = 2 if opts.shared else 1
    if not opts.shared:
        # Default: the client on the first allowed CPU, each server on the second (one core
        # each, all the server's threads and processes: taskset is inherited by the tree).
        cpus = sorted(os.sched_getaffinity(0))
        if not opts.wrk_cpus:
            opts.wrk_cpus = str(cpus[0])
        if not opts.server_cpus:
            rest = [c for c in cpus if str(c) not in opts.wrk_cpus.split(",")]
            if not rest:
                ap.error("pinned mode needs at least 2 allowed CPUs (use --shared)")
            opts.server_cpus = str(rest[0])
    for n in ("threads", "connections", "duration", "repeats", "workers", "callgrind_requests"):
        if getattr(opts, n) < 1:
            ap.error(f"--{n.replace('_', '-')} must be >= 1")
    if opts.callgrind_only:
        opts.callgrind = True
        opts.repeats = 0  # no wrk runs
        opts.chart = False
    return opts


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.list:
        for name, sc in SCENARIOS.items():
            print(f"{name}: servers {', '.join(sc['servers'])} (subject {sc['subject']})\n    {sc['description']}")
        return 0
    bad = [s for s in opts.scenarios if s not in SCENARIOS]
    if bad:
        sys.exit(f"unknown scenario(s) {bad}; known: {list(SCENARIOS)}")
    if not shutil.which("wrk"):
        sys.exit("wrk not found (apt-get install wrk)")
    if (opts.server_cpus or opts.wrk_cpus) and not shutil.which("taskset"):
        sys.exit("taskset not found (apt-get install util-linux)")
    # Explicit: a shell may start background jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    tmp_root = Path(tempfile.mkdtemp(prefix="hb-bench-"))
    results = []
    try:
        for sname in opts.scenarios:
            results.append(run_scenario(sname, opts, tmp_root))
            if results[-1]["interrupted"]:
                break
        if opts.chart and not opts.no_save and results:
            t = results[0]["started_utc"]
            tag = results[0]["scenario"] if len(results) == 1 else f"{len(results)}-scenarios"
            png = chart(results, Path(opts.out_dir) / f"{t[:10]}T{t[11:13]}{t[14:16]}Z-{tag}.png")
            if png:
                print(f"wrote chart {png}")
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all()
        if opts.keep_logs:
            print(f"server logs kept in {tmp_root}")
        else:
            shutil.rmtree(tmp_root, ignore_errors=True)
    return 130 if any(r["interrupted"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
