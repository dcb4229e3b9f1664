"""The bench's tree memory: RSS counts a shared page in every process that maps it, PSS
divides it among them, so a store of shared pages touched by several workers (Ray's object
store) is counted once in the tree's PSS and once a process in its RSS."""

import subprocess
import sys
import time

import psutil

from bench.pipeline_bench import memory_growth, tree_memory

MIB = 2**20
# A parent maps 64 MiB shared and touches every page, then forks two children that touch
# every page again; all three sleep until killed.
SHARED = """
import mmap, os, sys, time
size = 64 * 2**20
m = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
m.write(b"x" * size)
for _ in range(2):
    if os.fork() == 0:
        sum(m[i] for i in range(0, size, 4096))
        print("child", flush=True)
        time.sleep(60)
        os._exit(0)
time.sleep(60)
"""


def test_shared_pages_count_once_in_pss_and_in_each_process_in_rss():
    proc = subprocess.Popen([sys.executable, "-c", SHARED], stdout=subprocess.PIPE, text=True)
    try:
        assert [proc.stdout.readline().strip() for _ in range(2)] == ["child", "child"]
        time.sleep(0.2)
        rss, pss = tree_memory(psutil.Process(proc.pid))
        assert rss >= 3 * 64 * MIB  # the 64 MiB in each of three processes
        assert 64 * MIB <= pss < rss - 100 * MIB  # the 64 MiB once, not three times
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()


def test_memory_growth_reports_both_measures():
    small = {"peak_rss_mib": 1000.0, "peak_pss_mib": 500.0}
    large = {"peak_rss_mib": 1300.0, "peak_pss_mib": 550.0}
    assert memory_growth(small, large) == "RSS 1.30x, PSS 1.10x"


def test_rss_alone_reads_no_pss():
    rss, pss = tree_memory(psutil.Process())
    assert rss > 0 and pss > 0
    assert tree_memory(psutil.Process(), with_pss=False)[1] == 0
