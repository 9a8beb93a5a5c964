#!/usr/bin/env python3
"""perf/cluster/failure_bench.py: failure detection of hornbeam-uring's cluster next to HashiCorp
Serf (memberlist inside), in the same run: N nodes of each, kill -9 one node of each at the same
moment, time until every other node of that system has declared it dead.

    scripts/build.sh release && scripts/setup.sh --perf     # serf is in PERF_PKGS
    sudo /usr/bin/python3 perf/cluster/failure_bench.py [--nodes 5] [--rounds 10] [--steady 30]
                                                         [--loss PCT] [--loopback]
                                                         [--out-dir perf/results]

Where: by default every node (N hornbeam-uring, N `serf agent`) gets its own Linux network
namespace on one bridge (veth pairs, addresses 10.x.y.1..N for hornbeam, .101.. for serf), so
both systems cross the same kind of link and each node's traffic can be counted on its veth.
--loopback (or no root) puts them all on 127.0.0.1 ports instead (then no bandwidth figure).

Loss: --loss PCT drops PCT % of the packets every node receives, hornbeam-uring's and serf's
alike, from the moment both clusters have formed to the end (rounds and restarts included). The
kernel here has no sch_netem, so it is tests/integration/netloss.py's tc BPF classifier on the
ingress of each node's eth0 inside its namespace: each packet is lost with probability PCT / 100
on its one hop to its receiver, as `tc netem loss` on every node would. The share really dropped
is read back from each hook's counters and reported. Delay cannot be injected here (that needs
a queueing qdisc that holds packets: netem, which this kernel lacks).

Settings: both run their defaults, which match: hornbeam-uring's cluster_probe_interval 1 s,
probe_timeout 500 ms, indirect_checks 3, suspicion_mult 4 / max 6 (Lifeguard), gossip every
200 ms to 3, push-pull every 30 s; serf 0.8.2 agent `-profile lan` = memberlist 0.2.2's
DefaultLANConfig: ProbeInterval 1 s, ProbeTimeout 500 ms, IndirectChecks 3, SuspicionMult 4,
SuspicionMaxTimeoutMult 6, GossipInterval 200 ms, GossipNodes 3, PushPullInterval 30 s. With
N = 5 both give min suspicion = 4 x max(1, log10 5) x 1 s = 4 s, max 24 s.

How it measures: every node's log is read by a thread that stamps each line with the monotonic
clock as it arrives (hornbeam-uring: "cluster: dead NAME" on stderr at info level; serf:
"serf: EventMemberFailed: NAME" on stdout). A round picks the next victim i (round-robin), kills
hornbeam node i's whole process group and serf agent i with SIGKILL back to back (which goes first
alternates between rounds), and waits until every survivor of each system logged the victim dead:
detection = that last stamp - the kill time (also the first survivor's). Then both victims are
restarted with the same name and the round ends when every survivor logged them joined again.
Dead events for nodes that were not killed are counted as false dead. Before the rounds, a
steady-state window (--steady seconds, all nodes joined, nothing killed) measures each node's CPU
(utime+stime of its process tree; a hornbeam node also has its idle Python worker) and, in
namespaces, bytes sent and received on its veth.

Results: a Markdown table on stdout and <stamp>-cluster-failure.{json,md} in --out-dir.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TAG = "%04d" % (os.getpid() % 10000)
SUBNET = "10.%d.%d" % (120 + os.getpid() % 60, (os.getpid() // 60) % 250)
COOKIE = "failure-bench-cookie"
HB_EVENT = re.compile(r"cluster: (join|suspect|alive|dead|leave) (\S+)(?: \(\S*, incarnation (\d+))?")
# memberlist logs a suspicion it raises itself (not one it hears of) at info level
SERF_EVENT = re.compile(r"serf: EventMember(Join|Failed|Leave|Update|Reap): (\S+)"
                        r"|memberlist: (Suspect) (\S+) has failed")
SERF_KIND = {"Join": "join", "Failed": "dead", "Leave": "leave", "Update": "update",
             "Reap": "reap", "Suspect": "suspect"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(REPO / "tests" / "integration"))
import netloss  # noqa: E402


def run(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Net:
    """A bridge in the root namespace and one namespace per node, named by slot."""

    def __init__(self, slots):
        self.bridge = "hfb" + TAG
        self.ns, self.veth = {}, {}
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", "%s.254/24" % SUBNET, "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for slot in slots:
            ns, v = "hfn%s_%d" % (TAG, slot), "hfv%s_%d" % (TAG, slot)
            self.ns[slot], self.veth[slot] = ns, v
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", v, "master", self.bridge)
            run("ip", "link", "set", v, "up")
            run("ip", "-n", ns, "addr", "add", "%s.%d/24" % (SUBNET, slot), "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")

    def addr(self, slot):
        return "%s.%d" % (SUBNET, slot)

    def counters(self, slot):
        """(bytes the node sent, bytes it received): its veth's host end sees them reversed."""
        base = Path("/sys/class/net") / self.veth[slot] / "statistics"
        return (int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text()))

    def close(self):
        for ns in self.ns.values():
            run("ip", "netns", "del", ns, check=False)
        run("ip", "link", "del", self.bridge, check=False)


class Node:
    """One process (group) whose log lines are stamped as they arrive."""

    def __init__(self, system, idx, name, argv, env, pattern, stream):
        self.system, self.idx, self.name = system, idx, name
        self.events = []  # (monotonic, kind, member)
        self.suspects = []  # (monotonic, member, incarnation or None)
        self.tail = []
        self.cv = threading.Condition()
        out = subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL
        err = subprocess.PIPE if stream == "stderr" else subprocess.STDOUT
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=err, start_new_session=True)
        self.pattern = pattern
        pipe = self.proc.stdout if stream == "stdout" else self.proc.stderr
        self.reader = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.reader.start()

    def _read(self, pipe):
        for raw in pipe:
            t = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip()
            m = self.pattern.search(line)
            with self.cv:
                self.tail = (self.tail + [line])[-40:]
                if m:
                    word, member, *inc = [g for g in m.groups() if g is not None]
                    kind = SERF_KIND.get(word, word)
                    self.events.append((t, kind, member))
                    if kind == "suspect":
                        self.suspects.append((t, member, inc[0] if inc else None))
                    self.cv.notify_all()

    def first(self, kind, member, after):
        with self.cv:
            for t, k, n in self.events:
                if t >= after and k == kind and n == member:
                    return t
        return None

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self):
        self.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def pids(self):
        """The process and its descendants."""
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                for task in os.listdir("/proc/%d/task" % p):
                    kids = Path("/proc/%d/task/%s/children" % (p, task)).read_text().split()
                    todo += [int(k) for k in kids]
            except OSError:
                pass
        return out

    def cpu_ticks(self):
        total = 0
        for p in self.pids():
            try:
                f = Path("/proc/%d/stat" % p).read_text().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])  # utime, stime
            except (OSError, IndexError):
                pass
        return total


class System:
    """N nodes of one system; slot numbers (namespace, address) are base+1 .. base+N."""

    def __init__(self, kind, n, base, net, binary):
        self.kind, self.n, self.base, self.net, self.binary = kind, n, base, net, binary
        self.nodes = [None] * n
        self.ports = [(free_port(), free_port(), free_port()) for _ in range(n)]

    def name(self, i):
        return ("h%d@bench" % i) if self.kind == "hornbeam" else ("s%d" % i)

    def cluster_addr(self, i):
        if self.net:
            return "%s:7946" % self.net.addr(self.base + 1 + i)
        return "127.0.0.1:%d" % self.ports[i][0]

    def start(self, i, seeds):
        if self.net:
            ip = self.net.addr(self.base + 1 + i)
            http, rpc = "%s:8000" % ip, "127.0.0.1:7373"
            prefix = ["ip", "netns", "exec", self.net.ns[self.base + 1 + i]]
        else:
            http, rpc = "127.0.0.1:%d" % self.ports[i][1], "127.0.0.1:%d" % self.ports[i][2]
            prefix = []
        if self.kind == "hornbeam":
            argv = prefix + [self.binary, "bench_app:app", "--pythonpath", str(HERE),
                             "--bind", http, "--workers", "1", "--threads", "1",
                             "--node-name", self.name(i), "--cluster-enabled",
                             "--cluster-bind", self.cluster_addr(i), "--log-level", "info"]
            for s in seeds:
                argv += ["--cluster-seeds", self.cluster_addr(s)]
            env = dict(os.environ, HORNBEAM_CLUSTER_COOKIE=COOKIE,
                       HORNBEAM_PYTHON_LIB=str(REPO / "python"))
            node = Node("hornbeam", i, self.name(i), argv, env, HB_EVENT, "stderr")
        else:
            argv = prefix + ["serf", "agent", "-node", self.name(i), "-bind", self.cluster_addr(i),
                             "-rpc-addr", rpc, "-profile", "lan", "-log-level", "info"]
            for s in seeds:
                argv += ["-join", self.cluster_addr(s)]
            node = Node("serf", i, self.name(i), argv, dict(os.environ), SERF_EVENT, "stdout")
        self.nodes[i] = node
        return node

    def wait_all_see(self, kind, member, observers, after, deadline):
        """Stamps (per observer) of `kind member` after `after`; None where not by deadline."""
        stamps = {}
        while True:
            for o in observers:
                if o not in stamps:
                    t = self.nodes[o].first(kind, member, after)
                    if t is not None:
                        stamps[o] = t
            if len(stamps) == len(observers) or time.monotonic() > deadline:
                return stamps
            time.sleep(0.01)

    def wait_joined(self, deadline, after=0.0, only=None):
        """Every node logged every other joined (only: just pairs involving that node)."""
        for i in range(self.n):
            for j in range(self.n):
                if i == j or (only is not None and only not in (i, j)):
                    continue
                if not self.wait_all_see("join", self.name(j), [i], after, deadline):
                    return "%s never saw %s join:\n%s" % (
                        self.name(i), self.name(j), "\n".join(self.nodes[i].tail[-15:]))
        return None

    def window(self, t0, t1):
        """Dead events and suspicions between t0 and t1 (no node is killed in a window).
        Suspicions: hornbeam-uring logs every suspicion each node hears of, with the suspect's
        incarnation, so one episode is one (member, incarnation) pair over all logs; memberlist
        logs only the suspicions a node raises itself (its own failed probe), so there it is
        the number raised (a second accuser of one episode counts again)."""
        dead, episodes = [], set()
        for node in self.nodes:
            dead += [(n, round(t - t0, 1)) for t, k, n in node.events
                     if k == "dead" and t0 <= t <= t1]
            episodes |= {(n, inc if inc is not None else (node.name, t))
                         for t, n, inc in node.suspects if t0 <= t <= t1}
        return {"seconds": round(t1 - t0, 1), "dead_events": len(dead),
                "dead_members": sorted({n for n, _ in dead}), "dead_at_s": sorted(dead, key=lambda x: x[1])[:50],
                "suspicions": len(episodes)}

    def false_dead(self, killed):
        """Dead events whose member was not killed at or before that moment."""
        count = 0
        for node in self.nodes:
            if node is None:
                continue
            for t, k, member in node.events:
                if k == "dead" and not any(m == member and tk <= t for tk, m in killed):
                    count += 1
        return count

    def stop(self):
        for node in self.nodes:
            if node:
                node.reap()


def summary(xs):
    if not xs:
        return {}
    return {"n": len(xs), "median_s": round(statistics.median(xs), 3),
            "min_s": round(min(xs), 3), "max_s": round(max(xs), 3),
            "stdev_s": round(statistics.stdev(xs), 3) if len(xs) > 1 else 0.0}


def steady(systems, net, seconds):
    """Per node: CPU % and (netns only) bytes/s sent and received over `seconds`; per system:
    the dead events (all false: nothing is killed) and suspicions in that window."""
    before = {}
    for s in systems:
        for i, node in enumerate(s.nodes):
            slot = s.base + 1 + i
            before[(s.kind, i)] = (node.cpu_ticks(), net.counters(slot) if net else None)
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    out = {}
    for s in systems:
        cpu, tx, rx = [], [], []
        for i, node in enumerate(s.nodes):
            slot = s.base + 1 + i
            c0, b0 = before[(s.kind, i)]
            cpu.append((node.cpu_ticks() - c0) / CLK_TCK / dt * 100.0)
            if net:
                b1 = net.counters(slot)
                tx.append((b1[0] - b0[0]) / dt)
                rx.append((b1[1] - b0[1]) / dt)
        out[s.kind] = {"seconds": round(dt, 1), "window": s.window(t0, t0 + dt),
                       "cpu_pct_per_node_mean": round(statistics.mean(cpu), 3),
                       "cpu_pct_per_node_max": round(max(cpu), 3),
                       "tx_bytes_per_s_per_node_mean": round(statistics.mean(tx)) if tx else None,
                       "rx_bytes_per_s_per_node_mean": round(statistics.mean(rx)) if rx else None}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "build" / "hornbeam-uring"))
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steady", type=float, default=30.0,
                    help="seconds of the steady-state CPU/bandwidth window (0: none)")
    ap.add_argument("--detect-timeout", type=float, default=90.0)
    ap.add_argument("--loopback", action="store_true", help="127.0.0.1 ports, no namespaces")
    ap.add_argument("--loss", type=float, default=0.0,
                    help="percent of the packets each node receives to drop (namespaces only)")
    ap.add_argument("--out-dir", default=str(REPO / "perf" / "results"))
    a = ap.parse_args()
    if not shutil.which("serf"):
        sys.exit("failure_bench: needs `serf` (Debian package serf: scripts/setup.sh --perf)")
    if not os.access(a.binary, os.X_OK):
        sys.exit("failure_bench: no %s (scripts/build.sh release)" % a.binary)
    use_netns = not a.loopback and os.geteuid() == 0 and shutil.which("ip")
    if a.loss and not use_netns:
        sys.exit("failure_bench: --loss needs namespaces (root, `ip`, no --loopback)")
    if a.loss and netloss.missing():
        sys.exit("failure_bench: --loss: " + netloss.missing())
    n = a.nodes
    loss = netloss.Loss(a.loss) if a.loss else None
    net = Net(list(range(1, n + 1)) + list(range(101, 101 + n))) if use_netns else None
    loss_counts = {}
    hb = System("hornbeam", n, 0, net, a.binary)
    sf = System("serf", n, 100, net, a.binary)
    systems = (hb, sf)
    rounds = []
    killed = {"hornbeam": [], "serf": []}
    aborted = None  # why the rounds stopped early (the results so far are still written)
    try:
        for s in systems:
            s.start(0, [])
        time.sleep(0.5)
        for i in range(1, n):
            for s in systems:
                s.start(i, list(range(i)))
        for s in systems:
            err = s.wait_joined(time.monotonic() + 60)
            if err:
                sys.exit("failure_bench: %s did not form: %s" % (s.kind, err))
        print("both clusters formed (%d nodes each, %s)" % (n, "namespaces" if net else
                                                            "loopback"), flush=True)
        if loss:
            for slot in net.ns:
                loss.attach("eth0", netns=net.ns[slot])
            print("dropping %g %% of the packets every node receives" % a.loss, flush=True)
        time.sleep(3.0)
        st = steady(systems, net, a.steady) if a.steady > 0 else {}
        for r in range(a.rounds):
            v = r % n
            order = (hb, sf) if r % 2 == 0 else (sf, hb)
            t_kill = {}
            for s in order:
                t_kill[s.kind] = time.monotonic()
                s.nodes[v].kill()
                killed[s.kind].append((t_kill[s.kind], s.name(v)))
            row = {"round": r, "victim": v, "first_killed": order[0].kind}
            deadline = time.monotonic() + a.detect_timeout
            survivors = [i for i in range(n) if i != v]
            for s in systems:
                stamps = s.wait_all_see("dead", s.name(v), survivors, t_kill[s.kind], deadline)
                if len(stamps) < len(survivors):
                    row[s.kind] = None
                    print("round %d: %s: %d of %d saw %s dead within %.0f s" % (
                        r, s.kind, len(stamps), len(survivors), s.name(v), a.detect_timeout))
                else:
                    row[s.kind] = round(max(stamps.values()) - t_kill[s.kind], 3)
                    row[s.kind + "_first"] = round(min(stamps.values()) - t_kill[s.kind], 3)
            print("round %d (victim %d, %s killed first): hornbeam %s s, serf %s s" % (
                r, v, order[0].kind, row["hornbeam"], row["serf"]), flush=True)
            rounds.append(row)
            for s in systems:
                s.nodes[v].reap()
            t_restart = time.monotonic()
            for s in systems:
                s.start(v, survivors)
            errs = [(s.kind, s.wait_joined(time.monotonic() + 60, after=t_restart, only=v))
                    for s in systems]
            errs = ["%s victim did not rejoin: %s" % e for e in errs if e[1]]
            if errs:
                aborted = "round %d: %s" % (r, "; ".join(errs))
                print("failure_bench: stopping the rounds: " + aborted, flush=True)
                break
            time.sleep(2.0)
        if loss:
            for s in systems:
                c = [loss.counts("eth0", net.ns[s.base + 1 + i]) for i in range(n)]
                pk, dr = sum(x[0] for x in c), sum(x[1] for x in c)
                loss_counts[s.kind] = {"packets": pk, "dropped": dr,
                                       "dropped_pct": round(100.0 * dr / max(pk, 1), 2)}
    finally:
        for s in systems:
            s.stop()
        if net:
            net.close()
        if loss:
            loss.close()
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "nodes": n, "where": "namespaces" if net else "loopback",
              "loss_pct": a.loss, "loss_measured": loss_counts, "aborted": aborted,
              "load_average": os.getloadavg(), "rounds": rounds, "steady": st, "summary": {}}
    for s in systems:
        xs = [row[s.kind] for row in rounds if row.get(s.kind) is not None]
        firsts = [row[s.kind + "_first"] for row in rounds if row.get(s.kind) is not None]
        result["summary"][s.kind] = {"all_dead": summary(xs), "first_dead": summary(firsts),
                                     "missed": len(rounds) - len(xs),
                                     "false_dead": s.false_dead(killed[s.kind])}
    md = ["Failure detection, %d nodes each (%s), %s%d kill -9 rounds, load average %.1f" % (
        n, result["where"], ("%g %% loss on every node's ingress, " % a.loss) if loss else "",
        len(rounds), result["load_average"][0]), "",
        "| system | median (s) | min | max | stdev | first survivor median | missed |"
        " false dead, whole run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        sm = result["summary"][s.kind]
        al, fi = sm["all_dead"], sm["first_dead"]
        md.append("| %s | %s | %s | %s | %s | %s | %d | %d |" % (
            s.kind, al.get("median_s"), al.get("min_s"), al.get("max_s"), al.get("stdev_s"),
            fi.get("median_s"), sm["missed"], sm["false_dead"]))
    if aborted:
        md += ["", "Rounds stopped early: " + aborted]
    if st:
        md += ["", "Steady state, %s s, all joined, nothing killed%s:" % (
            st["hornbeam"]["seconds"], (", %g %% loss" % a.loss) if loss else ""), "",
               "| system | false dead events | members declared dead | suspicions |",
               "|---|---:|---|---:|"]
        for s in systems:
            w = st[s.kind]["window"]
            md.append("| %s | %d | %s | %d |" % (s.kind, w["dead_events"],
                                                 ", ".join(w["dead_members"]) or "-",
                                                 w["suspicions"]))
        md += ["", "Per node in that window:", "",
               "| system | CPU % mean | CPU % max | sent B/s | received B/s |",
               "|---|---:|---:|---:|---:|"]
        for s in systems:
            x = st[s.kind]
            md.append("| %s | %s | %s | %s | %s |" % (
                s.kind, x["cpu_pct_per_node_mean"], x["cpu_pct_per_node_max"],
                x["tx_bytes_per_s_per_node_mean"], x["rx_bytes_per_s_per_node_mean"]))
    if loss_counts:
        md += ["", "Packets the loss hooks saw and dropped, over the whole run:", "",
               "| system | packets received | dropped | % |", "|---|---:|---:|---:|"]
        for s in systems:
            x = loss_counts[s.kind]
            md.append("| %s | %d | %d | %s |" % (s.kind, x["packets"], x["dropped"],
                                                 x["dropped_pct"]))
    md = "\n".join(md) + "\n"
    print(md)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    (out / ("%s-cluster-failure.json" % stamp)).write_text(json.dumps(result, indent=1) + "\n")
    (out / ("%s-cluster-failure.md" % stamp)).write_text(md)


if __name__ == "__main__":
    main()
