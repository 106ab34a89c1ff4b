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
