#!/usr/bin/python3
"""perf/summarize.py: one table for a whole benchmark run, and issue 12's targets checked.

perf/bench.py writes one JSON per scenario. This reads the JSON files of one run (the files
given, or every JSON in perf/results whose name starts with --stamp) and prints one markdown
document: per scenario, every server's median req/s, spread, p99, server CPU per request and
RSS, the subject's ratios against each peer, then the targets of issue 12 with the measured
value and whether it is met. Idle-connection scenarios (idle-http, idle-ws) give KiB per
connection instead. Only the standard library of Debian's /usr/bin/python3.

    /usr/bin/python3 perf/summarize.py --stamp 2026-12-03T11 > perf/results/<stamp>-summary.md
    /usr/bin/python3 perf/summarize.py perf/results/2026-12-03T0823Z-hello.json ...
"""
import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# (scenario, peer, kind, bound, text). kind "rps": subject/peer req/s >= bound; "p99": subject/
# peer p99 <= bound; "uring": io_uring_enter per request <= bound; "kib": KiB of RSS per idle
# connection at every measured count <= bound.
TARGETS = [
    ("hello", "nginx", "rps", 1.0, "hello WSGI >= 1.0x nginx"),
    ("hello", "gunicorn", "rps", 10.0, "hello WSGI >= 10x gunicorn gthread"),
    ("hello", "uwsgi", "rps", 4.0, "hello WSGI >= 4x uWSGI"),
    ("hello-asgi", "nginx", "rps", 1.0, "hello ASGI >= 1.0x nginx"),
    ("hello-asgi", "uvicorn", "rps", 2.5, "hello ASGI >= 2.5x uvicorn"),
    ("flask", "gunicorn", "rps", 4.0, "Flask >= 4x gunicorn gthread"),
    ("flask", "uwsgi", "rps", 2.0, "Flask >= 2x uWSGI"),
    ("starlette", "uvicorn", "rps", 2.0, "Starlette >= 2x uvicorn"),
    ("pipelined", "nginx", "rps", 2.0, "pipelined >= 2x nginx"),
    ("resp-64k", "nginx", "rps", 0.9, "64 KiB responses >= 0.9x nginx"),
    ("hello-c1000", "nginx", "p99", 1.5, "p99 at 1000 connections <= 1.5x nginx's"),
    ("hello-c100", None, "uring", 0.25, "<= 0.25 io_uring_enter per request at 100 connections"),
    ("idle-ws", None, "kib", 8.0, "idle WebSocket <= 8 KiB per connection"),
    ("idle-http", None, "kib", 1.5, "idle keep-alive HTTP <= 1.5 KiB per connection"),
]


def fmt(v, nd=0):
    if v is None:
        return ""
    return f"{v:,.{nd}f}"


def load(paths):
    out = {}
    for p in paths:
        d = json.loads(Path(p).read_text())
        if "scenario" in d and "servers" in d:
            out[d["scenario"]] = (Path(p).name, d)
    return out


def is_idle(d):
    return any(isinstance(s.get("summary"), dict) and any(k.isdigit() for k in s["summary"])
               for s in d["servers"].values())


def idle_table(d):
    counts = sorted({k for s in d["servers"].values() for k in (s.get("summary") or {})
                     if k.isdigit()}, key=int)
    rows = ["| server | " + " | ".join(f"KiB/conn at {int(c):,}" for c in counts) + " |",
            "|---|" + "---:|" * len(counts)]
    for name, s in d["servers"].items():
        sm = s.get("summary") or {}
        cells = [fmt(sm[c]["rss_kib_per_conn"], 2) if c in sm else s.get("status", "")
                 for c in counts]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def load_table(d):
    rows = ["| server | req/s median | spread | p99 ms | CPU us/req | RSS MiB | io_uring_enter/req "
            "| socket err | runs |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in d["servers"].items():
        sm = s.get("summary") or {}
        if not sm.get("runs"):
            rows.append(f"| {name} | not run: {s.get('status', '')} | | | | | | | 0 |")
            continue
        p99 = sm.get("p99_us_median")
        rss = sm.get("rss_kib_median")
        rows.append(
            f"| {name} | {fmt(sm['rps_median'])} | ±{fmt(sm.get('rps_spread_pct'), 1)}% | "
            f"{fmt(p99 / 1000 if p99 else None, 2)} | {fmt(sm.get('cpu_us_per_req_median'), 1)} | "
            f"{fmt(rss / 1024 if rss else None, 1)} | {fmt(sm.get('io_uring_enter_per_req_median'), 2)} | "
            f"{fmt(sm.get('socket_errors'))} | {sm['runs']} |")
    ratios = d.get("ratios") or {}
    if ratios:
        rows += ["", "| ratio | req/s | p99 | CPU/req |", "|---|---:|---:|---:|"]
        for k, r in ratios.items():
            rows.append(f"| {k} | {fmt(r.get('rps'), 2)}x | {fmt(r.get('p99'), 2)}x | "
                        f"{fmt(r.get('cpu'), 2)}x |")
    return rows


def check(target, results):
    scen, peer, kind, bound, text = target
    if scen not in results:
        return text, "not in this run", None
    d = results[scen][1]
    subj = (d["servers"].get(d["subject"]) or {}).get("summary") or {}
    if kind in ("rps", "p99"):
        r = (d.get("ratios") or {}).get(f"{d['subject']}/{peer}", {}).get(kind)
        if r is None:
            return text, f"no {peer} result", None
        return text, f"{r:.2f}x", (r >= bound if kind == "rps" else r <= bound)
    if kind == "uring":
        v = subj.get("io_uring_enter_per_req_median")
        return (text, "not measured", None) if v is None else (text, f"{v:.2f}", v <= bound)
    vals = {c: subj[c]["rss_kib_per_conn"] for c in subj if c.isdigit()}
    if not vals:
        return text, "not measured", None
    shown = ", ".join(f"{v:.2f} at {int(c):,}" for c, v in sorted(vals.items(), key=lambda x: int(x[0])))
    return text, shown, max(vals.values()) <= bound


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="result JSON files (perf/bench.py, perf/idlebench.py)")
    ap.add_argument("--stamp", help="every perf/results/<stamp>*.json (e.g. 2026-12-03T11)")
    opts = ap.parse_args(argv)
    paths = list(opts.files)
    if opts.stamp:
        paths += sorted(str(p) for p in RESULTS.glob(f"{opts.stamp}*.json"))
    if not paths:
        ap.error("no result files: give files or --stamp")
    results = load(paths)
    if not results:
        sys.exit("summarize: none of the files is a perf/bench.py result")
    first = min(d["started_utc"] for _, d in results.values())
    last = max(d.get("finished_utc") or d["started_utc"] for _, d in results.values())
    out = [f"# Benchmark run {first} .. {last}", ""]
    # The run's settings, from the first load scenario (idle scenarios have fewer of them).
    cfg = next((d.get("config", {}) for _, d in results.values() if not is_idle(d)),
               next(iter(results.values()))[1].get("config", {}))
    said = [f"{label} {cfg[k]}" for label, k in (
        ("mode", "mode"), ("server CPUs", "server_cpus"), ("client CPUs", "wrk_cpus"),
        ("workers per server", "workers"), ("rounds", "repeats"), ("seconds per run", "duration"),
        ("connections", "connections")) if cfg.get(k) is not None]
    out += [f"{len(results)} scenarios; " + ", ".join(said) + "; servers interleaved, medians.", ""]
    out += ["## Targets (issue 12)", "", "| target | measured | met |", "|---|---:|---|"]
    for t in TARGETS:
        text, shown, ok = check(t, results)
        out.append(f"| {text} | {shown} | {'' if ok is None else ('yes' if ok else 'no')} |")
    out.append("")
    for scen, (fname, d) in results.items():
        out += [f"## {scen} ({fname})", "", d.get("description", ""), ""]
        out += idle_table(d) if is_idle(d) else load_table(d)
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
