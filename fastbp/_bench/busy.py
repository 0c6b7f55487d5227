"""Busy-looping processes: the bench's stand-in for a busy machine (a browser
open on a laptop, a shared server, a CI box, a job started beside another).

``BusyLoad(n)`` starts ``n`` Python processes that spin on one core each and
stops them when its ``with`` block ends, whatever ends it (an error,
Ctrl-C). Each child also checks every few milliseconds that its parent is
still the process that started it and exits when it is not, so even a
killed bench (``kill -9``) leaves no orphan spinning.
"""

import os
import subprocess
import sys

# The child: say it runs, then spin until the parent is gone.
_CHILD = """\
import os, sys
parent = int(sys.argv[1])
sys.stdout.write("1")
sys.stdout.flush()
sys.stdout.close()
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


def n_cores():
    """Cores this process may run on (the affinity mask where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class BusyLoad:
    """``n`` busy-looping child processes while the ``with`` block runs."""

    def __init__(self, n):
        n = int(n)
        if n < 0:
            raise ValueError(f"the number of busy processes must be >= 0, got {n}")
        self.n = n
        self.procs = []

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    def start(self):
        try:
            for _ in range(self.n):
                # A session of its own: Ctrl-C in the terminal reaches the
                # bench, which stops the children; they print nothing.
                p = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(os.getpid())],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, start_new_session=True)
                self.procs.append(p)
            for p in self.procs:  # each one runs before anything is measured
                p.stdout.read(1)
                p.stdout.close()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Terminate and reap every child (kill those that don't stop)."""
        procs, self.procs = self.procs, []
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None and not p.stdout.closed:
                p.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
