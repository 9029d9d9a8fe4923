"""A real rspamd (Debian's package) for the tests: its own minimal configuration in a
temporary directory, on free loopback ports, with its own redis-server for Bayes (rspamd's
statistics need Redis since 2.0). The packaged Lua rules are loaded (so checks give real
symbols and scores); plugins that ask the network (RBLs, SPF, ...) are not configured, and
its DNS points at a closed port so nothing leaves the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from bench.mailhost_process import free_port

RULES = "/usr/share/rspamd/rules/rspamd.lua"
MISSING = (
    "rspamd is not installed (Debian package rspamd, with redis-server)"
    if not (shutil.which("rspamd") and shutil.which("redis-server") and Path(RULES).exists())
    else ""
)

CONFIG = """
options {{
    pidfile = "{dir}/rspamd.pid";
    dbdir = "{dir}/db";
    tempdir = "{dir}/tmp";
    dns {{ nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{dir}/rspamd.log"; level = "info"; }}
lua = "{rules}";
worker "normal" {{ bind_socket = "127.0.0.1:{normal}"; count = 1; }}
worker "controller" {{ bind_socket = "127.0.0.1:{controller}"; count = 1; secure_ip = "127.0.0.1"; }}
classifier "bayes" {{
    backend = "redis";
    servers = "127.0.0.1:{redis}";
    tokenizer {{ name = "osb"; }}
    min_learns = 1;
    min_tokens = 5;
    statfile {{ symbol = "BAYES_SPAM"; spam = true; }}
    statfile {{ symbol = "BAYES_HAM"; spam = false; }}
}}
group "statistics" {{
    symbols {{
        "BAYES_SPAM" {{ weight = 5.1; description = "Message looks like the spam it was taught"; }}
        "BAYES_HAM" {{ weight = -3.0; description = "Message looks like the ham it was taught"; }}
    }}
}}
"""


class Rspamd:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.controller = free_port()
        self.url = f"http://127.0.0.1:{self.controller}"

    def stat(self) -> dict:
        with urllib.request.urlopen(self.url + "/stat", timeout=5) as reply:
            return json.loads(reply.read())

    def log(self) -> str:
        path = self.dir / "rspamd.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running_rspamd(directory: Path):
    """Start redis-server and rspamd, wait until rspamd answers, stop both after."""
    (directory / "db").mkdir(parents=True, exist_ok=True)
    (directory / "tmp").mkdir(exist_ok=True)
    server = Rspamd(directory)
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    config = directory / "rspamd.conf"
    config.write_text(
        CONFIG.format(
            dir=directory,
            rules=RULES,
            normal=free_port(),
            controller=server.controller,
            redis=redis_port,
        )
    )
    # -f: stay in the foreground (our child); -i: the tests may run as root.
    process = subprocess.Popen(
        ["rspamd", "-f", "-i", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # it compiles its TLD list and regexps first
        while True:
            try:
                server.stat()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rspamd did not start:\n{server.log()[-3000:]}") from None
                time.sleep(0.3)
        yield server
    finally:
        for child in (process, redis):
            child.terminate()
        for child in (process, redis):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
