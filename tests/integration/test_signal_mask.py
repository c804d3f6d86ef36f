"""Only the main thread may take SIGTERM and SIGINT (it waits for them with
sigwait and runs the shutdown). Any other thread that left them unblocked
would receive a signal that arrives while the main thread is not in sigwait
(during start-up, between phases) and the default action would kill the
process: exit by signal instead of a graceful drain and exit code 0. So
every other thread of a running server must block both; /proc says so
exactly. (The main thread shows them unblocked while it sits in sigwait:
the kernel opens the mask for the signals being waited for.)"""

import os
import signal

from harness import get


def blocked_signals(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk for task {tid}")


def thread_names(pid):
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names[int(tid)] = f.read().strip()
    return names


def test_every_thread_blocks_sigterm_and_sigint(server):
    srv = server(env={"WORKERS": "2"})
    assert get(srv.port, "/health/live").status == 200
    pid = srv.proc.pid
    tasks = thread_names(pid)
    # main, two workers, the log writer and the database cancel thread
    assert len(tasks) >= 4, tasks
    for tid in tasks:
        if tid == pid:
            continue
        mask = blocked_signals(pid, tid)
        for sig in (signal.SIGTERM, signal.SIGINT):
            assert mask & (1 << (sig - 1)), \
                f"thread {tid} ({tasks[tid]}) does not block {signal.Signals(sig).name}: SigBlk {mask:x}"
