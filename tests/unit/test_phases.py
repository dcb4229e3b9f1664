"""The phase table `make test` ends with (tests/support/phase.sh and phases.py)."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

from support import phases

PHASE_SH = phases.ROOT / "tests" / "support" / "phase.sh"


def test_phase_sh_logs_each_phase_with_its_time_and_exit_status(tmp_path, monkeypatch):
    log = tmp_path / "phases.tsv"
    monkeypatch.setenv("VITP_PHASES", str(log))
    env = {"VITP_PHASES": str(log), "PATH": "/usr/bin:/bin"}
    subprocess.run([str(PHASE_SH), "--reset"], env=env, check=True)
    subprocess.run([str(PHASE_SH), "slow step", "sleep", "1.2"], env=env, check=True)
    failed = subprocess.run([str(PHASE_SH), "failing step", "sh", "-c", "exit 3"], env=env)
    assert failed.returncode == 3  # the phase's own status is passed on, so make stops
    start, rows = phases.read()
    assert start is not None
    assert [(n, s) for n, _, s in rows] == [("slow step", 0), ("failing step", 3)]
    assert 1.2 <= rows[0][1] < 5 and rows[1][1] < 1


def test_table_sums_each_suite_and_ends_with_the_wall_time(tmp_path, monkeypatch):
    monkeypatch.setenv("VITP_PHASES", str(tmp_path / "phases.tsv"))
    (tmp_path / "phases.tsv").write_text("start\t1000.0\t0\ntestbed\t65.0\t0\n")
    clock = phases.SuiteClock()
    for nodeid, when, secs in [
        ("tests/unit/test_a.py::t1", "setup", 1.0),
        ("tests/unit/test_a.py::t1", "call", 2.0),
        ("tests/unit/test_b.py::t2", "call", 3.0),
        ("tests/e2e/test_k.py::t", "call", 125.0),
    ]:
        clock.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, when=when, duration=secs))
    lines = clock.table(now=1000.0 + 3 * 60 + 5)
    assert lines[0].split() == ["testbed", "1:05"]
    assert lines[1].split() == ["suite", "unit", "(2", "tests)", "0:06"]
    assert lines[2].split() == ["suite", "e2e", "(1", "tests)", "2:05"]
    assert lines[3].split() == ["make", "test,", "wall", "3:05"]
