"""Instructions per request under callgrind, for perf/bench.py --callgrind (stdlib only).

Instruction counts do not depend on the load of the machine, so they show a regression as a
number where req/s is noise. For one scenario: start the subject (hornbeam-uring, one worker)
under `valgrind --tool=callgrind`, send warm-up requests on one connection, then a fixed
number of requests over a second keep-alive connection with a deterministic client (below: one
request in flight, every response checked), then open a third connection, and parse the dump of
the second: total Ir per request, Ir per request by object (the server's own C, libpython, libc,
...) and the top functions of the server and of libpython.

The counters are cut at connections: callgrind runs with --dump-before=hb_conn_new and
--zero-before=hb_conn_new, so each new connection dumps what the process did since the previous
one and starts from zero. (callgrind_control cannot be used: requests are served by a worker
process the master forks, and valgrind's vgdb does not reach a forked child; it zeroed and dumped
the idle master, and every result read 0 Ir per request.)

Supported: scenarios whose client is wrk without a Lua script (a plain GET of the scenario's
path), and pipelined ones (scenario key "pipeline": that many GETs sent in one write, then
their responses read, as PIPELINE_LUA does); bench.py calls supported() first.
"""

import os
import re
import signal
import socket
import time
from pathlib import Path

TOP = 12  # functions listed per group


def supported(scen):
    return scen.get("client") is None and (not scen.get("lua") or scen.get("pipeline"))


# --------------------------------------------------------------------------------------
# The deterministic client: one connection, keep-alive, one request in flight
# --------------------------------------------------------------------------------------

class Client:
    def __init__(self, host, port, path, timeout=60.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def get(self, send=True):
        """One request; returns (status, body). Needs Content-Length (every perf app sends it).
        send=False reads the next response of requests already sent (get_many)."""
        if send:
            self.sock.sendall(self.req)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def get_many(self, n):
        """n requests in one write (HTTP/1.1 pipelining); returns their n (status, body)."""
        self.sock.sendall(self.req * n)
        return [self.get(send=False) for _ in range(n)]

    def close(self):
        self.sock.close()


def _run(client, scen, requests):
    """Sends `requests` requests (in bursts of scen["pipeline"] when set), checking each."""
    depth = scen.get("pipeline") or 1
    done = 0
    while done < requests:
        n = min(depth, requests - done)
        for r in (client.get_many(n) if depth > 1 else [client.get()]):
            _check(scen, *r)
        done += n


def _check(scen, status, body):
    ok = status == 200 and (body == scen["expect"] if "expect" in scen else scen["contains"] in body)
    if not ok:
        raise RuntimeError(f"unexpected response {status} {body[:80]!r}")


# --------------------------------------------------------------------------------------
# The callgrind output file: self cost per (object, function)
# --------------------------------------------------------------------------------------

_NAMED = re.compile(r"^(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=(?:\((\d+)\))?\s*(.*)$")


def parse_dump(path):
    """{(object, function): self Ir} and the file's totals, from a callgrind out file.

    Follows the format's name compression ("fn=(12) name" defines id 12, "fn=(12)" reuses it;
    ob/cob share one table, fn/cfn another, the file names a third). The cost line right after
    a "calls=" line is the inclusive cost of that call and is not the caller's self cost."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    table = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn",
             "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl"}
    ob, fn = "?", "?"
    self_ir = {}
    totals = None
    events = None
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    key = (ob, fn)
                    self_ir[key] = self_ir.get(key, 0) + int(parts[1])
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = _NAMED.match(line.rstrip("\n"))
            if m:
                kind, ident, name = m.group(1), m.group(2), m.group(3)
                t = names[table[kind]]
                if ident is not None:
                    if name:
                        t[ident] = name
                    name = t.get(ident, f"({ident})")
                if kind == "ob":
                    ob = name
                elif kind == "fn":
                    fn = name
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                totals = int(line.split()[1])
    if events and events[0] != "Ir":
        raise RuntimeError(f"{path}: first event is {events[0]}, not Ir")
    return self_ir, totals


def group_of(obj, server_bin):
    base = os.path.basename(obj)
    if obj == server_bin or base == os.path.basename(server_bin):
        return "server"
    if base.startswith("libpython"):
        return "libpython"
    if base.startswith("libc.so") or base.startswith("libc-"):
        return "libc"
    if base.startswith("liburing"):
        return "liburing"
    if base.startswith("ld-linux") or base.startswith("ld-"):
        return "ld.so"
    if "/lib-dynload/" in obj or obj.endswith(".so") and "python3" in obj:
        return "python extensions"
    return "other"


def summarize_dump(self_ir, totals, requests, server_bin):
    by_group = {}
    by_func = {}
    for (obj, fn), ir in self_ir.items():
        g = group_of(obj, server_bin)
        by_group[g] = by_group.get(g, 0) + ir
        by_func.setdefault(g, []).append((ir, fn))
    total = totals if totals is not None else sum(by_group.values())
    out = {
        "requests": requests,
        "ir_total": total,
        "ir_per_request": total / requests,
        "ir_per_request_by_group": {g: v / requests for g, v in
                                    sorted(by_group.items(), key=lambda kv: -kv[1])},
        "top_functions": {},
    }
    for g in ("server", "libpython", "libc"):
        funcs = sorted(by_func.get(g, []), reverse=True)[:TOP]
        out["top_functions"][g] = [{"function": fn, "ir_per_request": ir / requests,
                                    "share_pct": ir * 100 / total if total else None}
                                   for ir, fn in funcs]
    return out


# --------------------------------------------------------------------------------------
# One measurement
# --------------------------------------------------------------------------------------

def _new_dump(tmp, before, deadline):
    """The dump file written after `before` (names and sizes), once complete (its totals line
    written and its size steady)."""
    last = None
    while time.monotonic() < deadline:
        new = sorted((q for q in tmp.glob("cg.out.*") if q not in before),
                     key=lambda q: q.stat().st_mtime)
        if new:
            q = new[-1]
            size = q.stat().st_size
            if size and size == last:
                with open(q, errors="replace") as f:
                    if any(line.startswith(("totals:", "summary:")) for line in f):
                        return q
            last = size
        time.sleep(0.5)
    raise RuntimeError("no callgrind dump after the measured connection (is hb_conn_new in the "
                       "binary's symbols?)")


def measure(bench, name, scen, opts, tmp_root):
    """Runs server `name` of scenario `scen` under callgrind; returns the summary dict.
    `bench` is the perf/bench.py module (its spawn/stop/probe/free_port/Ctx)."""
    for tool in ("valgrind",):
        if not bench.shutil.which(tool):
            raise bench.Skip(f"{tool} not found (apt-get install valgrind)")
    tmp = Path(bench.tempfile.mkdtemp(prefix=f"cg-{name}-", dir=tmp_root))
    port = bench.free_port()
    ctx = bench.Ctx(port, tmp, opts)
    cmd = scen["servers"][name](ctx)  # may raise Skip
    extra = opts.extra_args.get(name)
    if extra:
        cmd += bench.shlex.split(extra)
    server_bin = os.path.realpath(cmd[0])
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out.%p",
          "--dump-instr=no", "--dump-before=hb_conn_new", "--zero-before=hb_conn_new"]
    cmd = bench.pin_prefix(opts.server_cpus) + vg + cmd
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(k, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(ctx.env)
    log = Path(tmp_root) / f"{name}-callgrind.log"
    p = bench.spawn(cmd, log_path=log, env=env, cwd=str(bench.REPO))
    try:
        deadline = time.monotonic() + max(opts.start_timeout, 180)
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"exited with status {p.returncode} under valgrind\n{bench.tail(log)}")
            try:
                status, _, body = bench.probe(port, scen["path"], timeout=10)
                _check(scen, status, body)
                break
            except (OSError, bench.http.client.HTTPException, RuntimeError) as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no correct answer under valgrind in time ({e})\n{bench.tail(log)}")
                time.sleep(0.2)
        client = Client(bench.LOOPBACK, port, scen["path"])
        _run(client, scen, opts.callgrind_warmup)
        client.close()
        client = Client(bench.LOOPBACK, port, scen["path"])  # its accept zeroes the counters
        t0 = time.monotonic()
        _run(client, scen, opts.callgrind_requests)
        secs = time.monotonic() - t0
        client.close()
        before = {q: q.stat().st_size for q in tmp.glob("cg.out.*")}
        Client(bench.LOOPBACK, port, scen["path"]).close()  # its accept dumps the measurement
        dumps = _new_dump(tmp, before, deadline=time.monotonic() + 120)
        self_ir, totals = parse_dump(dumps)
        res = summarize_dump(self_ir, totals, opts.callgrind_requests, server_bin)
        res.update({"server": name, "warmup_requests": opts.callgrind_warmup,
                    "seconds_under_valgrind": secs, "cmd": cmd,
                    "inflight": _inflight(scen),
                    "client": f"one keep-alive connection, {_inflight(scen)} "
                              "(perf/cgbench.py Client), every response checked"})
        return res
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
        bench.stop(p, grace=20.0)


def _inflight(scen):
    depth = scen.get("pipeline") or 1
    return f"{depth} pipelined requests per write" if depth > 1 else "one request in flight"


def table_md(cg):
    """The markdown section of a result's "callgrind" entry."""
    if "error" in cg:
        return f"\n## Instructions per request (callgrind)\n\n{cg['server']}: {cg['error']}\n"
    lines = ["", "## Instructions per request (callgrind)", "",
             f"{cg['server']}, one worker, under `valgrind --tool=callgrind`: "
             f"{cg['requests']:,} requests after {cg['warmup_requests']:,} warm-up, one keep-alive "
             f"connection, {cg.get('inflight', 'one request in flight')}. Self Ir (instructions executed) per request; "
             "independent of the machine's load.", "",
             f"**Total: {cg['ir_per_request']:,.0f} Ir/request**", "",
             "| object | Ir/request | share |", "|---|---:|---:|"]
    for g, v in cg["ir_per_request_by_group"].items():
        lines.append(f"| {g} | {v:,.0f} | {v * 100 / cg['ir_per_request']:.1f}% |")
    for g, funcs in cg["top_functions"].items():
        if not funcs:
            continue
        lines += ["", f"Top functions ({g}, self):", "", "| function | Ir/request | share of total |",
                  "|---|---:|---:|"]
        for f in funcs:
            lines.append(f"| `{f['function']}` | {f['ir_per_request']:,.0f} | {f['share_pct']:.1f}% |")
    return "\n".join(lines) + "\n"


def print_summary(cg):
    if "error" in cg:
        print(f"callgrind ({cg['server']}): {cg['error']}")
        return
    groups = ", ".join(f"{g} {v:,.0f}" for g, v in cg["ir_per_request_by_group"].items())
    print(f"callgrind ({cg['server']}): {cg['ir_per_request']:,.0f} Ir/request ({groups})")
    for g in ("server", "libpython"):
        top = cg["top_functions"].get(g) or []
        print(f"  top {g}: " + ", ".join(f"{f['function']} {f['ir_per_request']:,.0f}" for f in top[:5]))
