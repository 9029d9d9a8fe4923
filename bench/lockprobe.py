"""A temporary probe of SQLite's writer lock (mailhost/sqlite3/base.py) and its report: who holds
the lock, for how long, and doing what (issue 22's port 25 on SQLite).

    python bench/lockprobe.py apply CHECKOUT     # patch a throwaway checkout (never commit it)
    LOCKPROBE_DIR=DIR python CHECKOUT/bench/profile_server.py smtp --seconds 20
    python bench/lockprobe.py report DIR

`apply` rewrites CHECKOUT's mailhost/sqlite3/base.py and mailboxes/groupcommit.py (a clone or a
worktree made for it: the probe is not for main) so that, with LOCKPROBE_DIR set in runmail's
environment (bench/mailhost_process.py passes variables without the MAILHOST_ prefix), each
process appends one line a writer-lock transaction to DIR/lock-PID.tsv: who held it (the
group commit's batch, "gcN" for N pieces; else the first mailboxes/delivery/protocols frame;
"checkpoint"), the wait for the locks, the hold, the holder thread's CPU (time.thread_time),
its time and CPU in SQLite's calls, the statements, the COMMIT's time, and its run-queue
delay over the hold (/proc/thread-self/schedstat). LOCKPROBE_SWITCH=SECONDS sets
sys.setswitchinterval in runmail. `report` sums the middle 80% of the run by holder, and the
group commit's transactions by batch size. It patches by the text of those two files as of
this commit: where they changed, `apply` fails on an assertion; adapt it then.
"""

from __future__ import annotations

import collections
import glob
import re
import sys


def apply(root: str) -> None:
    p = f"{root}/mailhost/sqlite3/base.py"
    s = open(p).read()
    assert "_STATS_DIR" not in s
    s = s.replace(
        """logger = logging.getLogger(__name__)
""",
        """logger = logging.getLogger(__name__)

# --- TEMPORARY lock instrumentation (bench/lockprobe.py), not to land ---
import sys as _sys
import time as _time

_STATS_DIR = os.environ.get("LOCKPROBE_DIR")
if os.environ.get("LOCKPROBE_SWITCH"):
    _sys.setswitchinterval(float(os.environ["LOCKPROBE_SWITCH"]))
_stl = threading.local()
_stat_records: list = []
_stat_guard = threading.Lock()


def _run_delay() -> int:
    with open("/proc/thread-self/schedstat", "rb") as f:
        return int(f.read().split()[1])


def _stat_who() -> str:
    label = getattr(_stl, "label", None)
    if label:
        return label
    f = _sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if ("/mailboxes/" in fn or "/delivery/" in fn or "/protocols/" in fn) and "transactions" not in fn and "groupcommit" not in fn:
            return f"{fn.rsplit('/', 2)[-2]}/{f.f_code.co_name}"
        f = f.f_back
    return "?"


def _stat_flush(force: bool = False) -> None:
    if not _STATS_DIR:
        return
    with _stat_guard:
        if not force and len(_stat_records) < 200:
            return
        rows = _stat_records[:]
        del _stat_records[:]
    with open(f"{_STATS_DIR}/lock-{os.getpid()}.tsv", "a") as out:
        for r in rows:
            out.write("\\t".join(str(x) for x in r) + "\\n")
""",
        1,
    )
    s = s.replace(
        """    def convert_query(self, query, *, param_names=None):""",
        """    def execute(self, query, params=None):
        st = getattr(_stl, "active", None)
        if st is None:
            return super().execute(query, params)
        t, c = _time.perf_counter(), _time.thread_time()
        try:
            return super().execute(query, params)
        finally:
            st[0] += _time.perf_counter() - t
            st[1] += _time.thread_time() - c
            st[2] += 1

    def executemany(self, query, param_list):
        st = getattr(_stl, "active", None)
        if st is None:
            return super().executemany(query, param_list)
        t, c = _time.perf_counter(), _time.thread_time()
        try:
            return super().executemany(query, param_list)
        finally:
            st[0] += _time.perf_counter() - t
            st[1] += _time.thread_time() - c
            st[2] += 1

    def convert_query(self, query, *, param_names=None):""",
        1,
    )
    n = s.count("        acquired = lock.acquire(")
    assert n == 1, n
    s = s.replace(
        "        acquired = lock.acquire(",
        "        _t0 = _time.perf_counter()\n        acquired = lock.acquire(",
        1,
    )
    m = re.search(r"\n( +)self\.holds_file_lock = fd\n", s)
    ind = m.group(1)
    s = (
        s[: m.end()]
        + (
            f"""{ind}if _STATS_DIR:
{ind}    _t2 = _time.perf_counter()
{ind}    self._st = [0.0, 0.0, 0, None, _t2 - _t0, 0, _t2, _time.thread_time(), 0.0, _run_delay()]
{ind}    _stl.active = self._st
"""
        )
        + s[m.end() :]
    )
    s = s.replace(
        """    def _release_file_lock(self) -> None:
        fd, self.holds_file_lock = self.holds_file_lock, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)""",
        """    _st = None

    def _release_file_lock(self) -> None:
        fd, self.holds_file_lock = self.holds_file_lock, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        st, self._st = self._st, None
        if st is not None:
            _stl.active = None
            now = _time.perf_counter()
            with _stat_guard:
                _stat_records.append((_stat_who(), round(st[4]*1e6), 0, round((now - st[6])*1e6), round((_time.thread_time() - st[7])*1e6), round(st[0]*1e6), round(st[1]*1e6), st[2], round(st[8]*1e6), round(st[6], 6), round((_run_delay() - st[9]) / 1e3)))""",
        1,
    )
    assert "_stat_records.append((_stat_who()" in s
    s = s.replace(
        """        committed = False
        try:
            result = super()._commit()""",
        """        committed = False
        _tc = _time.perf_counter()
        try:
            result = super()._commit()""",
        1,
    )
    s = s.replace(
        """            if self.connection is None or not self.connection.in_transaction:""",
        """            if self._st is not None:
                self._st[8] += _time.perf_counter() - _tc
            if self.connection is None or not self.connection.in_transaction:""",
        1,
    )
    s = s.replace(
        """                if committed:
                    checkpoints.committed()""",
        """                if committed:
                    checkpoints.committed()
                _stat_flush()""",
        1,
    )
    old = """            fd = _files.fd(name)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)"""
    assert old in s
    s = s.replace(
        old,
        """            fd = _files.fd(name)
            fcntl.flock(fd, fcntl.LOCK_EX)
            _t2 = _time.perf_counter()
            _c = _time.thread_time()
            try:
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                now = _time.perf_counter()
                if _STATS_DIR:
                    with _stat_guard:
                        _stat_records.append(("checkpoint", 0, 0, round((now-_t2)*1e6), round((_time.thread_time()-_c)*1e6), round((now-_t2)*1e6), round((_time.thread_time()-_c)*1e6), 1, 0, round(_t2, 6), 0))""",
    )
    open(p, "w").write(s)

    p = f"{root}/mailboxes/groupcommit.py"
    s = open(p).read()
    s = s.replace(
        """    def _commit(self, batch: list[_Work]) -> None:
        try:""",
        """    def _commit(self, batch: list[_Work]) -> None:
        from mailhost.sqlite3 import base as _b  # TEMPORARY: bench/lockprobe.py

        _b._stl.label = f"gc{len(batch)}"
        try:""",
        1,
    )
    s = s.replace(
        """        except BaseException as exc:  # never leave a waiter waiting
            for work in batch:""",
        """        except BaseException as exc:  # never leave a waiter waiting
            _b._stl.label = None
            for work in batch:""",
        1,
    )
    s = s.replace(
        """            for work in batch:
                if not work.done:
                    _alone(work)
""",
        """            for work in batch:
                if not work.done:
                    _alone(work)
            _b._stl.label = None
""",
        1,
    )
    assert s.count("_b._stl.label") == 3
    open(p, "w").write(s)


# A record's fields after the pid: who, wait, (unused), hold, cpu, sql wall, sql cpu,
# statements, commit, start, run delay (microseconds; start in seconds).
WHO, WAIT, HOLD, CPU, SQL_WALL, SQL_CPU, STATEMENTS, COMMIT, START, RUN_DELAY = (
    1,
    2,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)


def _records(directory: str) -> list[tuple]:
    rows = []
    for name in glob.glob(f"{directory}/lock-*.tsv"):
        pid = name.rsplit("-", 1)[1].split(".")[0]
        with open(name) as lines:
            for line in lines:
                fields = line.rstrip("\n").split("\t")
                rows.append((pid, fields[0], *map(float, fields[1:])))
    return sorted(rows, key=lambda r: r[START])


def _mean(rows: list[tuple], index: int) -> float:
    return sum(r[index] for r in rows) / len(rows)


def report(directory: str) -> None:
    rows = _records(directory)
    first, last = rows[0][START], rows[-1][START]
    low, high = first + (last - first) * 0.1, first + (last - first) * 0.9
    rows = [r for r in rows if low <= r[START] <= high]
    held = sum(r[HOLD] for r in rows)
    print(f"window {high - low:.1f} s, {len(rows)} transactions")
    print(f"lock held {100 * held / 1e6 / (high - low):.1f}% of the window")
    holders: dict[str, list[tuple]] = collections.defaultdict(list)
    for r in rows:
        holders["gc" if re.fullmatch(r"gc\d+", r[WHO]) else r[WHO]].append(r)
    columns = ("hold", "cpu", "sqlw", "sqlc", "commit", "stmts", "%held", "wait", "rundly")
    print(f"{'who (us, means)':24} {'n':>6} " + " ".join(f"{c:>7}" for c in columns))
    for who, those in sorted(holders.items(), key=lambda kv: -sum(r[HOLD] for r in kv[1])):
        share = 100 * sum(r[HOLD] for r in those) / held
        means = [_mean(those, i) for i in (HOLD, CPU, SQL_WALL, SQL_CPU, COMMIT, STATEMENTS)]
        tail = [share, _mean(those, WAIT), _mean(those, RUN_DELAY)]
        print(f"{who[:24]:24} {len(those):6d} " + " ".join(f"{v:7.1f}" for v in means + tail))
    batches = holders.get("gc", [])
    if not batches:
        return
    messages = sum(int(r[WHO][2:]) for r in batches)
    sizes = collections.Counter(int(r[WHO][2:]) for r in batches)
    print(
        f"group commit: {len(batches)} transactions, {messages} messages,"
        f" {messages / len(batches):.2f} a transaction; sizes {sorted(sizes.items())[:10]}"
    )
    each = {
        name: sum(r[i] for r in batches) / messages
        for name, i in (("hold", HOLD), ("cpu", CPU), ("sqlw", SQL_WALL), ("sqlc", SQL_CPU))
    }
    each["stmts"] = sum(r[STATEMENTS] for r in batches) / messages
    each["rundly"] = sum(r[RUN_DELAY] for r in batches) / messages
    print("a message: " + ", ".join(f"{k} {v:.1f}" for k, v in each.items()))
    for size in (1, 2, 4, 8, 16):
        those = [r for r in batches if int(r[WHO][2:]) == size]
        if those:
            means = [_mean(those, i) for i in (HOLD, CPU, SQL_WALL, SQL_CPU, STATEMENTS)]
            print(f" batch {size:2d}: n {len(those):5d} " + " ".join(f"{v:7.1f}" for v in means))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("apply", "report"):
        raise SystemExit(__doc__)
    (apply if sys.argv[1] == "apply" else report)(sys.argv[2])
