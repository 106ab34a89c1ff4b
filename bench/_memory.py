"""Peak memory of a benchmark's process, measured so that a child process reports its own."""

from __future__ import annotations


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB. Not ``getrusage``'s ru_maxrss: Linux
    carries the parent's high-water mark into a child across fork and exec, so a child started
    by a large process reports the parent's peak, whatever it used itself."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """The peak of this process's anonymous resident memory (RssAnon: its heap, not the pages of
    files it maps, such as a SQLite catalogue read through mmap), sampled every ``interval`` s
    by a thread while the block runs; ``mb`` is read after it."""

    def __init__(self, interval: float = 0.02) -> None:
        import threading

        self.interval, self.mb = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.mb = max(self.mb, self.now_mb())

    def __enter__(self) -> AnonPeak:
        self.mb = self.now_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.mb = max(self.mb, self.now_mb())
