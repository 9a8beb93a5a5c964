#!/usr/bin/env python3
"""perf/cluster/rpc_tls_bench.py: rpc_call between two nodes on loopback with plaintext links
and with mutual TLS links (cluster_tls), side by side in one run.

Reuses rpc_bench.py's nodes and bench_app's /bench route: for each mode (plain, tls) it starts
node b (callee) and node a (callers), waits for the join, then measures calls/s and the round
trip p50/p99 for each --callers count and --sizes argument size. Certificates come from
tests/tls/make_certs.sh in a temporary directory. Prints a Markdown table; --json writes it.

    scripts/build.sh release
    /usr/bin/python3 perf/cluster/rpc_tls_bench.py [--seconds 3] [--callers 1 64] \\
        [--sizes 16 65536]

Only the standard library. Both nodes and the callers share the machine.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rpc_bench import REPO, get, two_nodes  # noqa: E402


def run(binary, extra, callers, sizes, seconds):
    rows = []
    with two_nodes(binary, extra) as ha:
        get(ha, "/bench?target=b@bench&callers=1&seconds=0.5&size=16")  # warm-up
        for size in sizes:
            for k in callers:
                r = get(ha, "/bench?target=b@bench&callers=%d&seconds=%s&size=%d"
                        % (k, seconds, size))
                r["size"] = size
                rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--callers", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 65536])
    ap.add_argument("--json")
    a = ap.parse_args()
    certs = Path(tempfile.mkdtemp(prefix="hb-rpc-tls-"))
    subprocess.run([str(REPO / "tests" / "tls" / "make_certs.sh"), str(certs)], check=True)

    def tls(name):
        return ["--cluster-certfile", str(certs / (name + ".pem")),
                "--cluster-keyfile", str(certs / (name + ".key")),
                "--cluster-cacertfile", str(certs / "ca.pem")]

    out = {}
    for mode, extra in (("plain", lambda name: []), ("tls", tls)):
        out[mode] = run(a.binary, extra, a.callers, a.sizes, a.seconds)
    subprocess.run(["rm", "-rf", str(certs)], check=False)
    print("| size (B) | callers | plain calls/s | TLS calls/s | plain p50/p99 (us) | "
          "TLS p50/p99 (us) | errors |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for p, t in zip(out["plain"], out["tls"]):
        print("| %d | %d | %.0f | %.0f | %s / %s | %s / %s | %s |" % (
            p["size"], p["callers"], p["calls_per_s"], t["calls_per_s"], p["p50_us"],
            p["p99_us"], t["p50_us"], t["p99_us"], (p["errors"] or t["errors"]) or "-"))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
