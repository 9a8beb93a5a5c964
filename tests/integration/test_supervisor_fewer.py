"""Fewer worker processes on a TCP bind (docs/production.md "Reload", docs/architecture.md
"Fewer processes"): the sockets of the process that goes are parked in their SO_REUSEPORT group (a BPF program sends new
connections to the other members), the process serves what was already queued there, then
retires. So SIGTTOU and a reload to fewer `processes` fail no request, even with connections
queued in the leaving process's socket, and without net.ipv4.tcp_migrate_req (which would let
the kernel move a closed socket's queue)."""
import os
import re
import signal
import time

from hbtest import free_port, http, wait_for
from test_supervisor import Load, _stopped, wait_serving

APP = "supervisor_apps:app"


def _migrate_req():
    with open("/proc/sys/net/ipv4/tcp_migrate_req") as f:
        return f.read().strip()


def _slot_pid(s, slot):
    """The newest process booted in `slot` (the master's log)."""
    pids = re.findall(r"Booting worker process %d with pid (\d+)" % slot, s.stderr())
    assert pids, s.describe()
    return int(pids[-1])


def _with_queue(pid, act):
    """Stops pid so that its socket queues its share of the connections, runs act() (its
    sockets are parked then), and lets pid go on: it must serve that queue before it retires."""
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_for(lambda: _stopped(pid), 10), "process %d did not stop" % pid
        time.sleep(0.3)
        act()
        time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_ttou_and_a_reload_to_fewer_processes_fail_no_request(server, tmp_path):
    # What this proves needs the kernel's own rescue off: with it on, a closed socket's queue
    # would move to the group's other sockets anyway. (On a host where it is 1, run the tests
    # in a network namespace of their own: `unshare -n` starts one with it 0.)
    assert _migrate_req() == "0", "net.ipv4.tcp_migrate_req is on: this test would prove nothing"
    port = free_port()
    conf = tmp_path / "hb.toml"
    conf.write_text('bind = ["127.0.0.1:%d"]\nprocesses = 3\n' % port)
    s = server(APP, "--config", str(conf), bind=False, port=port)
    assert wait_for(lambda: len(s.worker_pids()) == 3, 20), s.describe()
    wait_serving(s, s.worker_pids())
    fds = len(os.listdir("/proc/%d/fd" % s.pid))
    load = Load(port, clients=6)
    try:
        assert wait_for(lambda: load.count() > 20, 10), s.describe()
        third = _slot_pid(s, 2)
        _with_queue(third, lambda: s.signal(signal.SIGTTOU))
        assert wait_for(lambda: third not in s.worker_pids() and len(s.worker_pids()) == 2, 15), s.describe()
        assert "SIGTTOU: 2 worker processes (the sockets of the one that goes are parked" in s.stderr()
        served = load.count()
        assert wait_for(lambda: load.count() > served + 20, 10), s.describe()
        # A reload to one process: the second slot's sockets are parked once generation 2 serves.
        second = _slot_pid(s, 1)
        conf.write_text('bind = ["127.0.0.1:%d"]\nprocesses = 1\n' % port)
        _with_queue(second, lambda: (s.signal(signal.SIGHUP),
                                     wait_for(lambda: "Reloaded: generation 2 serves (1 processes)" in s.stderr(), 20)))
        assert "Reloaded: generation 2 serves (1 processes)" in s.stderr(), s.describe()
        assert wait_for(lambda: len(s.worker_pids()) == 1 and second not in s.worker_pids(), 15), s.describe()
        served = load.count()
        assert wait_for(lambda: load.count() > served + 20, 10), s.describe()
        # Back to two: the parked sockets of slot 1 serve again (the group does not grow).
        s.signal(signal.SIGTTIN)
        assert wait_for(lambda: len(s.worker_pids()) == 2, 15), s.describe()
        wait_serving(s, s.worker_pids())
    finally:
        ok, failed = load.stop()
    assert not failed, "%d failed requests of %d: %r\n%s" % (len(failed), ok + len(failed), failed[:5], s.describe())
    # 3 slots' sockets and their group members: the third slot's, parked, stay (one each).
    assert len(os.listdir("/proc/%d/fd" % s.pid)) == fds, s.describe()
    s.assert_alive()
