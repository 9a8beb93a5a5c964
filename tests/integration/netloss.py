"""netloss.py: random packet loss on a network device, without sch_netem.

The development machine's kernel has no netem qdisc, but it has clsact and tc's BPF classifier:
netloss.c, compiled here with clang for the share asked, drops that share of the packets that
cross a device's hook (direct action, TC_ACT_SHOT) at random, whatever they carry (TCP, UDP,
ARP). Attached to the ingress of the veth end inside a node's namespace, every packet the node
receives is lost with that probability: `tc netem loss` on each node, one draw per hop.

    loss = Loss(10)                      # compiles once into a temporary folder
    loss.attach("eth0", netns="ns1")     # clsact + the classifier on eth0's ingress
    loss.counts("eth0", netns="ns1")     # (packets seen, packets dropped) by the hook
    loss.close()                         # removes the folder (deleting a namespace detaches)

Needs root, `tc` (iproute2) and `clang` with the kernel's UAPI headers (scripts/setup.sh
installs both). Used by tests/integration/test_cluster_netns.py and perf/cluster/failure_bench.py.
"""
import json
import platform
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "netloss.c"


def missing():
    """What this machine lacks to inject loss (a sentence), or None."""
    for prog, pkg in (("tc", "iproute2"), ("clang", "clang")):
        if not shutil.which(prog):
            return "`%s` is not installed (Debian package %s, scripts/setup.sh)" % (prog, pkg)
    return None


def _run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), (r.stderr or r.stdout).strip()))
    return r.stdout


def _tc(netns, *args):
    return ["tc"] + (["-n", netns] if netns else []) + list(args)


class Loss:
    """The classifier compiled for `pct` percent (0 .. 100, fractions allowed)."""

    def __init__(self, pct):
        if not 0 <= pct <= 100:
            raise ValueError("loss must be 0 .. 100 percent, not %r" % pct)
        self.pct = pct
        self.dir = tempfile.mkdtemp(prefix="hb-netloss-")
        self.obj = str(Path(self.dir) / "netloss.o")
        multiarch = sysconfig.get_config_var("MULTIARCH") or platform.machine() + "-linux-gnu"
        try:
            _run(["clang", "-O2", "-g0", "-target", "bpf", "-I/usr/include/" + multiarch,
                  "-DLOSS_THRESHOLD=%dULL" % round(pct / 100 * (1 << 32)),
                  "-c", str(SOURCE), "-o", self.obj])
        except Exception:
            self.close()
            raise

    def attach(self, dev, netns=None, hook="ingress"):
        """Adds a clsact qdisc to dev and the classifier on its `hook` (ingress or egress)."""
        _run(_tc(netns, "qdisc", "add", "dev", dev, "clsact"))
        _run(_tc(netns, "filter", "add", "dev", dev, hook, "bpf", "da", "obj", self.obj,
                 "sec", "tc"))

    @staticmethod
    def detach(dev, netns=None):
        """Removes dev's clsact qdisc and with it the classifier."""
        _run(_tc(netns, "qdisc", "del", "dev", dev, "clsact"))

    @staticmethod
    def counts(dev, netns=None):
        """(packets, dropped) that dev's clsact hooks saw since attach: the kernel counts every
        packet entering the hook and every TC_ACT_SHOT in the qdisc's statistics."""
        for q in json.loads(_run(_tc(netns, "-s", "-j", "qdisc", "show", "dev", dev))):
            if q.get("kind") == "clsact":
                return q.get("packets", 0), q.get("drops", 0)
        raise RuntimeError("%s has no clsact qdisc" % dev)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)
