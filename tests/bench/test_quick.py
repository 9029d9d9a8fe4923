"""The benchmark harness runs end to end (`bench/run.py --quick`) and produces every figure.

This checks that the bench works — Mailhost, the bare aiosmtpd ceiling and (where installed)
Postfix all start, are measured and are stopped — not how fast anything is. With DATABASE_URL
set (CI's PostgreSQL + Redis run) the bench runs with --postgres on a fresh database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from numbers import Real
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and value >= 0


def test_quick_bench_produces_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--json", str(out)]
    if os.environ.get("DATABASE_URL"):
        command.append("--postgres")
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    data = json.loads(out.read_text())

    assert data["errors"] == {}
    assert data["meta"]["mode"] == "quick"
    assert data["meta"]["database"] == ("postgresql" if "--postgres" in command else "sqlite")

    cases = data["smtp"]["cases"]
    combos = {(c["size"], c["sessions"], c["connection"]) for c in cases}
    assert combos == {
        (size, sessions, connection)
        for size in ("1KB", "10KB", "100KB")
        for sessions in (1, 20)
        for connection in ("new", "reuse")
    }
    postfix = data["smtp"]["postfix"] != "not installed"
    for case in cases:
        # Every message answered 250 was durably stored: the bench counts the rows.
        assert case["mailhost_stored"] == case["messages"], case
        for key in ("mailhost_per_s", "aiosmtpd_per_s", "ratio_to_aiosmtpd"):
            assert _number(case[key]) and case[key] > 0, (key, case)
        if postfix:
            for key in ("postfix_per_s", "postfix_accept_per_s", "ratio_to_postfix"):
                assert _number(case[key]) and case[key] > 0, (key, case)
        # CPU per message of each server's process tree (clock ticks: a short row may read 0).
        cpu_keys = ["mailhost_cpu_ms", "aiosmtpd_cpu_ms"] + (["postfix_cpu_ms"] if postfix else [])
        for key in cpu_keys:
            assert _number(case[key]), (key, case)
    assert any(case["mailhost_cpu_ms"] > 0 for case in cases)
    if "--postgres" in command:  # and its PostgreSQL backends', read off a server on this machine
        assert all(_number(case["postgres_backend_cpu_ms"]) for case in cases), cases
        if urlsplit(os.environ["DATABASE_URL"]).hostname in (None, "127.0.0.1", "localhost"):
            assert any(case["postgres_backend_cpu_ms"] > 0 for case in cases), cases

    if (REPO / "mailboxes" / "sieve" / "__init__.py").exists():
        sieve = data["sieve"]
        assert sieve["rules"] == 50
        for key in ("interpreter_cpu_ms", "mda_plan_cpu_ms", "accept_cpu_ms_with_script"):
            assert _number(sieve[key]) and sieve[key] > 0, (key, sieve)

    inbound = data["inbound_checks"]  # port 25's checks, CPU per message
    for key in ("authenticate, cached DNS: CPU ms", "authenticate, uncached DNS: CPU ms"):
        assert _number(inbound[key]) and inbound[key] > 0, (key, inbound)
    # A difference of two measurements: a busy machine may even make it negative.
    assert isinstance(inbound["message_accept, added by the checks: CPU ms"], float)

    spam = data["spam"]  # the builtin spam verdict, CPU per message, classifier size
    for key in ("verdict_untrained_cpu_ms", "verdict_trained_cpu_ms", "tokens_cpu_ms"):
        assert _number(spam[key]) and spam[key] > 0, (key, spam)
    assert spam["classifier_rows"] > 0 and isinstance(spam["accept_cpu_ms_added"], float)
    assert "Spam verdict (builtin)" in result.stdout

    outbound = {(run["processes"], run["workers"]): run for run in data["outbound"]}
    assert set(outbound) == {(0, 1), (0, 4), (0, 16), (2, 8)}
    for run in outbound.values():
        assert run["complete"] and run["delivered"] == run["messages"], run
        assert _number(run["delivered_per_s"]) and _number(run["submit_per_s"])
        # The same load relayed by the reference Postfix, where it is installed.
        assert "postfix_delivered_per_s" in run
        # Mailhost's submission signed every message the sink received (the domain's key).
        assert run["signed"] == run["delivered"], run
    # Where OpenDKIM is installed, the same load through a Postfix that signs with it, which
    # the sink saw signed, beside the stock Postfix whose mail it saw unsigned.
    if "outbound_postfix_dkim" in data:
        signing = data["outbound_postfix_dkim"]
        assert signing["complete"] and signing["signed"] == signing["delivered"] > 0, signing
        assert data["outbound_postfix"]["signed"] == 0, data["outbound_postfix"]
        for run in outbound.values():
            assert _number(run["ratio_to_postfix_dkim"]), run
    drain = {(run["processes"], run["workers"]): run for run in data["outbound_drain"]}
    assert set(drain) == set(outbound)
    for run in drain.values():
        assert run["complete"] and run["delivered"] == run["messages"], run
        assert _number(run["drain_per_s"]), run

    folders = data["imap"]["folders"]
    assert len(folders) == 3
    for folder in folders:
        assert folder["exists"] == folder["messages"] == folder["fetched"], folder
        for key in (
            "login_select_ms",
            "select_ms",
            "uid_fetch_flags_ms",
            "uid_search_unseen_ms",
            "uid_search_subject_ms",
        ):
            assert _number(folder[key]), (key, folder)
    assert _number(data["imap"]["select_ratio_large_to_small"])
    assert _number(data["imap"]["append"]["per_second"])

    memory = data["memory"]
    assert [m["connections"] for m in memory] == [0, *(m["asked"] for m in memory[1:])]
    assert len(memory) == 4 and all(_number(m["rss_mib"]) and m["rss_mib"] > 0 for m in memory)
    # The whole process tree: RSS summed over its processes, PSS beside it.
    for m in memory:
        assert m["processes"] >= 1 and 0 < m["pss_mib"] <= m["rss_mib"], m

    webmail = data["webmail"]
    assert _number(webmail["list_ms"]) and _number(webmail["message_ms"])

    # Dovecot's imaptest where a binary is at hand (against Dovecot too where installed),
    # else the table says what is missing.
    stress = data["imaptest"]
    if isinstance(stress, dict):
        for server in ("mailhost", "dovecot"):
            if isinstance(stress[server], dict):
                assert stress[server]["ops_per_s"] > 0, stress
                assert stress[server]["operations"]["Logi"] > 0, stress
        assert "IMAP stress" in result.stdout
        # The same mix over implicit TLS (issue 22's row), with CPU per operation.
        for server in ("mailhost", "dovecot"):
            figures = stress["tls"][server]
            if isinstance(figures, dict):
                assert figures["ops_per_s"] > 0 and figures["operations"]["Logi"] > 0, stress
                assert _number(figures["cpu_ms_per_op"]), stress
        assert "implicit TLS" in result.stdout
    else:
        assert "imaptest not found" in stress

    # The table went to standard output, and nothing the bench started is left running.
    assert "SMTP inbound" in result.stdout and "Memory" in result.stdout
    assert data["meta"]["pids"]
    for pid in data["meta"]["pids"]:
        assert not _running(pid), f"process {pid} started by the bench is still running"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
