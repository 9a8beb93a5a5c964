"""sockowner.py: which process holds a listening TCP socket (from /proc; stdlib only).

Used by tests/integration/test_cluster_procs.py and perf/cluster/rpc_bench.py to find the
worker process that runs a server's cluster: the one whose descriptors include the socket
listening on the cluster port.
"""
import os


def listening_pid(port, pids):
    """The pid among pids that holds the socket listening on TCP port (IPv4), or None."""
    suffix = ":%04X" % port
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1].endswith(suffix) and cols[3] == "0A":  # LISTEN
                inodes.add("socket:[%s]" % cols[9])
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                    return pid
            except OSError:
                pass
    return None
