"""Children that die with the command: Prefect's in-process API server is a child process of the
``archive`` command, and a command killed with SIGKILL left it running for good (reparented to
PID 1, a port and ~200 MB each). A watchdog process reads a pipe from the command; when the
command ends, however it ends, the pipe closes and the watchdog stops the command's other
descendants. Linux only (it reads ``/proc``); elsewhere nothing is started."""

from __future__ import annotations

import os
import subprocess
import sys

_WATCH = r"""
import os, signal, sys, time
from select import select as wait_readable
parent, me = int(sys.argv[1]), os.getpid()

def descendants(pid):
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                kids = open(f"/proc/{p}/task/{t}/children").read().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k != me and k not in found:
                    found.append(k)
                    todo.append(k)
    return found

known = []
while True:
    ready, _, _ = wait_readable([sys.stdin], [], [], 0.2)
    if ready and not os.read(sys.stdin.fileno(), 1):
        break  # the command ended: its end of the pipe closed
    known = [p for p in dict.fromkeys(known + descendants(parent))]
for sig in (signal.SIGTERM, signal.SIGKILL):
    for p in known:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    time.sleep(2)
"""


_started: dict[int, subprocess.Popen] = {}  # by pid: kept, so the pipe stays open while we live


def start() -> subprocess.Popen | None:
    """Start the watchdog of this process's children (once per process; Linux only). The pipe's
    end here is never closed by us: it closes when this process ends, after Prefect's own
    shutdown has stopped its server, so the watchdog only ends what was left behind."""
    if not sys.platform.startswith("linux") or os.environ.get("ARCHIVE_WATCHDOG") == "0":
        return None
    if os.getpid() not in _started:
        _started[os.getpid()] = subprocess.Popen(
            [sys.executable, "-c", _WATCH, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    return _started[os.getpid()]
