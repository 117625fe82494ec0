# SPDX-License-Identifier: Apache-2.0
"""Helpers the Python sides of the benchmarks share: dropping a checkpoint's pages from the page cache
before a cold read, and the peak memory of a phase (VmHWM reset through /proc/self/clear_refs)."""
import os
import resource


def drop_cache(path):
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_hwm():
    """Resets VmHWM to the current RSS; False when the kernel refuses (then ru_maxrss is used)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Peak:
    """Peak RSS reached during the block, minus the RSS at its start, in MiB."""

    def __enter__(self):
        self.reset = reset_hwm()
        self.before = status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        hwm = status_kib("VmHWM") if self.reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.extra_mib = (hwm - self.before) / 1024.0
        return False
