"""The bench's own measuring: a server's process tree with its CPU time and memory
(bench/mailhost_process.py), the summary of py-spy's collapsed stacks
(bench/profile_server.py), and what an outbound row of bench/run.py counts at its sink."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# A parent that starts a child; the child burns CPU for a while, then both wait to be killed.
FAMILY = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import time
end = time.process_time() + 0.6
while time.process_time() < end:
    pass
print("burnt", flush=True)
time.sleep(60)
'''], stdout=sys.stdout)
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


def test_process_tree_cpu_and_memory_count_the_children(bench_path):
    from mailhost_process import process_tree, tree_cpu_seconds, tree_memory

    parent = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(parent.stdout.readline())
        assert process_tree(parent.pid) == [parent.pid, child]
        assert parent.stdout.readline().strip() == "burnt"
        # The child's CPU is the tree's; the parent alone used a fraction of it.
        assert tree_cpu_seconds(child) >= 0.5
        assert tree_cpu_seconds(parent.pid) >= tree_cpu_seconds(child)
        memory = tree_memory(parent.pid)
        alone = tree_memory(child)
        assert memory["processes"] == 2 and alone["processes"] == 1
        assert memory["rss"] > alone["rss"] > 0 and 0 < memory["pss"] <= memory["rss"]
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait(10)


def test_profile_summary_counts_self_and_total(bench_path, tmp_path):
    from profile_server import summarize

    raw = tmp_path / "profile.txt"
    raw.write_text(
        "process 1;main (a.py);accept (b.py);parse (c.py) 6\n"
        "process 1;main (a.py);accept (b.py) 2\n"
        "process 1;main (a.py);select (d.py) 2\n"
        "not a stack line\n"
    )
    text = summarize(raw, top=3)
    assert text.startswith("10 samples")
    own, total = text.split("total (self and callees):")
    assert "60.0%  parse (c.py)" in own and "20.0%  accept (b.py)" in own
    assert "80.0%  accept (b.py)" in total and "100.0%  main (a.py)" in total


def test_the_lock_probe_report_sums_by_holder_and_batch(bench_path, tmp_path, capsys):
    """bench/lockprobe.py's report: the middle 80% of the run, the lock's held share, each
    holder's means, and the group commit's messages a transaction."""
    import lockprobe

    lines = []
    for n in range(11):  # one transaction every 0.1 s from t=100; the first and last left out
        who = "gc2" if n % 2 else "mailboxes/index_blobs"
        # who, wait, -, hold, cpu, sql wall, sql cpu, statements, commit, start, run delay
        lines.append(f"{who}\t10\t0\t20000\t5000\t8000\t2000\t6\t300\t{100 + n / 10}\t9000\n")
    (tmp_path / "lock-1.tsv").write_text("".join(lines))
    lockprobe.report(str(tmp_path))
    out = capsys.readouterr().out
    assert "window 0.8 s, 9 transactions" in out
    assert "lock held 22.5% of the window" in out  # 9 x 20 ms in 0.8 s
    assert "group commit: 5 transactions, 10 messages, 2.00 a transaction" in out
    assert "a message: hold 10000.0, cpu 2500.0" in out


def test_an_outbound_row_counts_its_own_sessions_at_the_sink(bench_path, monkeypatch):
    """bench/run.py's outbound rows (runmail's, Postfix's) share one sink: a row's
    sink_sessions is what the sink saw during that row, not its count since its start (a
    4-thread row read 200 sessions, 156 of them made by Postfix + OpenDKIM's row before)."""
    import time
    import types

    import run
    from baseline_aiosmtpd import CountingHandler

    handler = CountingHandler()

    async def submit(host, port, count, sessions, auth=True, cpu_pid=0):  # noqa: ANN001, ANN202
        handler.sessions += 3  # the server under test opened three sessions to the sink
        handler.recipients += count
        return {"ok": count, "errors": [], "start": time.perf_counter(), "cpu": 0.0}

    monkeypatch.setattr(run, "submit", submit)
    monkeypatch.setattr(run, "trees_cpu_seconds", lambda pids: 0.0)
    bench = run.Bench.__new__(run.Bench)
    bench.counts = {"outbound": 10}
    bench.sink = types.SimpleNamespace(handler=handler)
    rows = [bench.outbound_load(0, 1, auth=False) for _ in range(2)]
    assert [row["sink_sessions"] for row in rows] == [3, 3]
    assert all(row["delivered"] == 10 for row in rows)
    assert all(row["bench_cpu_ms_per_message"] >= 0 for row in rows)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc/stat")
def test_machine_busy_sees_a_core_spinning_and_a_sleep(bench_path):
    """bench/run.py's machine_busy (an outbound row's share of all CPUs busy, which tells a
    row bound by the CPU from one bound by waiting): a process spinning on one core for the
    window makes at least 1/cpus of it busy, and its value stays within 0..1."""
    import run

    start = run.machine_cpu_ticks()
    spinner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.monotonic() + 0.6\nwhile time.monotonic() < end: pass",
        ],
    )
    spinner.wait()
    busy = run.machine_busy_since(start)
    cpus = os.cpu_count() or 1
    assert busy is not None and 1 / cpus * 0.8 <= busy <= 1.0
    assert run.machine_busy_since(None) is None
