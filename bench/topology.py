"""Several front ends and workers on one PostgreSQL, one Redis and one S3, behind HAProxy.

The production shape of README "Scaling out", on one machine: each process has its own
loopback address, as it would have its own machine.

    HAProxy (TCP mode, send-proxy-v2) on 127.0.0.40, from 127.0.0.49 to the front ends
        smtp1 127.0.0.41, smtp2 127.0.0.42   manage.py runsmtp
        imap1 127.0.0.43, imap2 127.0.0.44   manage.py runimap
        pop31 127.0.0.45                     manage.py runpop3
    worker1, worker2                         manage.py rqworker
    PostgreSQL (DATABASE_URL's server, a fresh database), Redis (REDIS_URL's server, one
    database, flushed first), S3: moto's server mode on 127.0.0.46
    outbound: MX of remote.cluster.test (DNS on 127.0.0.48) -> a recording sink on 127.0.0.47

Used by tests/scale/test_topology.py (kills and restarts under load) and, run as a script,
by the bench (SMTP throughput through HAProxy with one and with two front ends, and what
bounds the shared parts: PostgreSQL commits/s, Redis round trips, S3 request latency):

    .venv/bin/python bench/topology.py [--messages 2000] [--sessions 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dns_server import DnsServer  # noqa: E402
from mailhost_process import REPO, PostgresDatabase, free_port, terminate  # noqa: E402

HAPROXY = "127.0.0.40"
HAPROXY_SOURCE = "127.0.0.49"  # the balancer's side of its connections to the front ends
S3_HOST = "127.0.0.46"
SINK_HOST = "127.0.0.47"
DNS_HOST = "127.0.0.48"
CLIENT_HOST = "127.0.0.50"  # clients that go to one front end directly
DOMAIN = "cluster.test"
REMOTE_DOMAIN = "remote.cluster.test"
PASSWORD = "cluster-password-1"
SECRET_KEY = "topology-test-secret-key-shared-by-every-node-0123456789"
BUCKET = "mailhost-cluster"
S3_KEY_ID, S3_SECRET = "cluster-key-id", "cluster-secret-key"

FRONT_ENDS = {
    "smtp1": ("runsmtp", "127.0.0.41"),
    "smtp2": ("runsmtp", "127.0.0.42"),
    "imap1": ("runimap", "127.0.0.43"),
    "imap2": ("runimap", "127.0.0.44"),
    "pop31": ("runpop3", "127.0.0.45"),
}
WORKERS = ("worker1", "worker2")
# The plain ports each front end family listens on, and the balancer's frontends for them.
FAMILY_PORTS = {"runsmtp": ("SMTP",), "runimap": ("IMAP",), "runpop3": ("POP3",)}
UNUSED_PORTS = ("SUBMISSION", "SUBMISSIONS", "IMAPS", "POP3S", "MANAGESIEVE", "WEB")


def default_redis_url() -> str:
    """MAILHOST_TOPOLOGY_REDIS_URL, else REDIS_URL (its database is flushed first)."""
    return (
        os.environ.get("MAILHOST_TOPOLOGY_REDIS_URL")
        or os.environ.get("REDIS_URL")
        or "redis://127.0.0.1:6379/0"
    )


def missing() -> str | None:
    """Why the topology cannot run here, or None."""
    if shutil.which("haproxy") is None:
        return "haproxy is not installed (Debian: apt-get install haproxy)"
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return "DATABASE_URL does not name a PostgreSQL server"
    if not os.environ.get("REDIS_URL"):
        return "REDIS_URL is not set"
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return "moto[server] is not installed"
    try:
        socket.create_connection((HAPROXY, 9), timeout=1).close()
    except ConnectionRefusedError:
        pass  # 127.0.0.0/8 answers: loopback addresses beyond 127.0.0.1 work
    except OSError as exc:
        return f"loopback addresses beyond 127.0.0.1 are not usable: {exc}"
    return None


class Sink:
    """The remote MX: an aiosmtpd server that keeps every message it is handed."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.port = free_port(SINK_HOST)
        self.controller = Controller(self, hostname=SINK_HOST, port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        with self.lock:
            self.received.append(envelope.original_content or envelope.content)
        return "250 2.0.0 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.received)


class Node:
    """One process of the cluster: a front end (its own address and ports) or a worker."""

    def __init__(self, name: str, command: str, address: str | None, env: dict, logs: Path):
        self.name, self.command, self.address = name, command, address
        self.ports: dict[str, int] = {}
        self.env = dict(env)
        if address:
            self.env["MAILHOST_BIND"] = address
            for port in FAMILY_PORTS[command]:
                self.ports[port.lower()] = free_port(address)
                self.env[f"MAILHOST_{port}_PORT"] = str(self.ports[port.lower()])
        self.env["MAILHOST_DATA_DIR"] = str(logs / name)
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        Path(self.env["MAILHOST_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO / "manage.py"), self.command],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def ready(self) -> bool:
        if not self.address:  # a worker: RQ says so once it listens on its queue
            return b"Listening on" in self.log_path.read_bytes()[-20000:]
        for port in self.ports.values():
            try:
                socket.create_connection((self.address, port), timeout=1).close()
            except OSError:
                return False
        return True

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as when the machine dies."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self, grace: float = 10) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, grace)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """Start with `start()`, stop with `stop()` (everything it started, also after errors)."""

    def __init__(self, workdir: Path, *, redis_url: str | None = None, extra_env=None) -> None:
        self.workdir = workdir
        self.redis_url = redis_url or default_redis_url()
        server = os.environ.get("DATABASE_URL") or "postgres://root@127.0.0.1:5432/postgres"
        self.database = PostgresDatabase(server, f"mh_topology_{os.getpid()}")
        self.stack = contextlib.ExitStack()
        self.extra_env = dict(extra_env or {})
        self.nodes: dict[str, Node] = {}
        self.front: dict[str, int] = {}  # haproxy's frontends: "smtp", "smtp_one", "imap", "pop3"
        self.haproxy: subprocess.Popen | None = None

    # --- environment ----------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("MAILHOST_") and key not in {"DATABASE_URL", "REDIS_URL"}
        }
        env.update(
            {
                "DATABASE_URL": self.database.url,
                "REDIS_URL": self.redis_url,
                # Shared by every node: SRS bounces and web sessions verify on any of them.
                "MAILHOST_SECRET_KEY": SECRET_KEY,
                "MAILHOST_HOSTNAME": f"mx.{DOMAIN}",
                "MAILHOST_PROCESSES": "1",
                "MAILHOST_PROXY_TRUSTED": HAPROXY_SOURCE,
                "MAILHOST_ALLOW_PLAINTEXT_AUTH": "1",
                "MAILHOST_S3_BUCKET": BUCKET,
                "MAILHOST_S3_ENDPOINT_URL": f"http://{S3_HOST}:{self.s3_port}",
                "MAILHOST_S3_REGION": "us-east-1",
                "MAILHOST_S3_ACCESS_KEY_ID": S3_KEY_ID,
                "MAILHOST_S3_SECRET_ACCESS_KEY": S3_SECRET,
                "MAILHOST_DNS_SERVERS": f"{DNS_HOST}:{self.dns.address[1]}",
                "MAILHOST_OUTBOUND_PORT": str(self.sink.port),
                "MAILHOST_INBOUND_CHECKS": "0",
                "MAILHOST_SHUTDOWN_GRACE": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name in UNUSED_PORTS:
            env[f"MAILHOST_{name}_PORT"] = "0"
        env.update(self.extra_env)
        return env

    # --- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database.create()
        self.stack.callback(self.database.drop)
        _flush(self.redis_url)
        self.stack.callback(_flush, self.redis_url)
        self.dns = DnsServer(REMOTE_DOMAIN, SINK_HOST, host=DNS_HOST)
        self.dns.start()
        self.stack.callback(self.dns.stop)
        self.sink = Sink()
        self.sink.controller.start()
        self.stack.callback(self.sink.controller.stop)
        self.s3_port = free_port(S3_HOST)
        with concurrent.futures.ThreadPoolExecutor() as pool:
            s3 = pool.submit(self._start_s3)
            self.provision()
            s3.result()
        env = self.base_env()
        for name, (command, address) in FRONT_ENDS.items():
            self.nodes[name] = Node(name, command, address, env, self.workdir)
        for name in WORKERS:
            self.nodes[name] = Node(name, "rqworker", None, env, self.workdir)
        self.stack.callback(self._stop_nodes)
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            for started in [pool.submit(node.start) for node in self.nodes.values()]:
                started.result()
        self._start_haproxy()

    def _start_s3(self) -> None:
        import boto3

        env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", S3_HOST, "-p", str(self.s3_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.stack.callback(terminate, process)
        _wait_listening(S3_HOST, self.s3_port, process, "moto")
        boto3.client(
            "s3",
            endpoint_url=f"http://{S3_HOST}:{self.s3_port}",
            region_name="us-east-1",
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        ).create_bucket(Bucket=BUCKET)

    def provision(self) -> None:
        """Migrate, then the domain, its mailboxes and an alias that forwards outside."""
        self.manage("migrate", "-v0")
        self.manage("shell", "-v0", "-c", PROVISION.format(domain=DOMAIN, password=PASSWORD))

    def manage(self, *args: str, timeout: float = 300) -> str:
        env = self.base_env() if hasattr(self, "s3_port") else {}
        env["MAILHOST_DATA_DIR"] = str(self.workdir / "manage")
        result = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-3000:]}")
        return result.stdout

    def _start_haproxy(self) -> None:
        families = {
            "smtp": [n for n in self.nodes.values() if n.command == "runsmtp"],
            "imap": [n for n in self.nodes.values() if n.command == "runimap"],
            "pop3": [n for n in self.nodes.values() if n.command == "runpop3"],
        }
        families["smtp_one"] = families["smtp"][:1]  # the bench's one-front-end figure
        config = [
            "global",
            "    maxconn 4000",
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 300s",
            "    timeout server 300s",
            # A front end that refuses (killed, restarting) costs a retry on another, not
            # the client's connection; health checks take it out within a second.
            "    retries 3",
            "    option redispatch",
            "    balance roundrobin",
        ]
        for family, nodes in families.items():
            port_name = family.split("_")[0]
            self.front[family] = free_port(HAPROXY)
            config += [f"listen {family}", f"    bind {HAPROXY}:{self.front[family]}"]
            for node in nodes:
                config.append(
                    f"    server {node.name} {node.address}:{node.ports[port_name]}"
                    f" source {HAPROXY_SOURCE} send-proxy-v2"
                    " check check-send-proxy inter 300 fall 1 rise 2"
                )
        path = self.workdir / "haproxy.cfg"
        path.write_text("\n".join(config) + "\n")
        log = open(self.workdir / "haproxy.log", "ab")  # noqa: SIM115 - closed with the process
        self.haproxy = subprocess.Popen(
            [shutil.which("haproxy"), "-db", "-f", str(path)], stdout=log, stderr=log
        )
        self.stack.callback(log.close)
        self.stack.callback(terminate, self.haproxy)
        _wait_listening(HAPROXY, self.front["smtp"], self.haproxy, "haproxy")

    def _stop_nodes(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(self.nodes))) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes.values()))

    def stop(self) -> None:
        self.stack.close()

    # --- during a run ---------------------------------------------------------------------

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def restart(self, name: str) -> None:
        self.nodes[name].start()

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"--- {node.name}\n{node.log_tail(lines)}" for node in self.nodes.values())


PROVISION = """
from mailboxes import services
services.domain_create(name="{domain}")
for local in ("alice", "bob", "carol", "dave"):
    services.mailbox_create(address=local + "@{domain}", password="{password}")
services.alias_create(address="fwd@{domain}", destinations=["out@remote.cluster.test"])
"""


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _wait_listening(host: str, port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on {host}:{port}") from None
            time.sleep(0.1)


# --- the bench --------------------------------------------------------------------------------


def stored_count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT COUNT(*) FROM mailboxes_message").fetchone()[0]


def postgres_commits(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def redis_commands(url: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


def measure_postgres(database_url: str, seconds: float) -> dict:
    """Commits per second of one small write transaction (INSERT; COMMIT), from 1 and from 8
    clients, and pgbench's TPC-B-like TPS (-N: no branch/teller updates) when installed.
    synchronous_commit stays on: every commit is flushed to the WAL, as Mailhost's are."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial, v text)")

    def committer(stop_at: float) -> int:
        done = 0
        with psycopg.connect(database_url) as conn:
            while time.monotonic() < stop_at:
                conn.execute("INSERT INTO bench_commit (v) VALUES ('x')")
                conn.commit()
                done += 1
        return done

    figures = {}
    for clients in (1, 8):
        stop_at = time.monotonic() + seconds
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            total = sum(pool.map(committer, [stop_at] * clients))
        figures[f"commits_per_s_{clients}_clients"] = round(total / seconds)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_commit")
    pgbench = shutil.which("pgbench")
    if pgbench:
        parts = urlsplit(database_url)
        args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
        args += ["-U", parts.username or "root", parts.path.lstrip("/")]
        subprocess.run([pgbench, "-i", "-q", "-s", "1", *args], capture_output=True, check=True)
        run = subprocess.run(
            [pgbench, "-N", "-c", "8", "-j", "2", "-T", str(int(seconds)), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"tps = ([\d.]+)", run.stdout)
        figures["pgbench_simple_update_tps_8_clients"] = round(float(match[1])) if match else None
    return figures


def measure_redis(url: str, count: int = 20000) -> dict:
    """Round trips per second (PING, one client, each waiting for its answer), and the same
    commands pipelined 100 at a time."""
    import redis

    client = redis.Redis.from_url(url)
    client.ping()
    started = time.perf_counter()
    for _ in range(count):
        client.ping()
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(count // 100):
        pipe = client.pipeline(transaction=False)
        for _ in range(100):
            pipe.ping()
        pipe.execute()
    pipelined = time.perf_counter() - started
    return {
        "round_trips_per_s": round(count / sequential),
        "round_trip_us": round(sequential / count * 1e6, 1),
        "pipelined_commands_per_s": round(count / pipelined),
    }


def measure_s3(endpoint: str, count: int = 100, size: int = 8192) -> dict:
    """PUT and GET latency of an 8 KB object on the S3 endpoint (moto here: a Python server on
    loopback, not a real object store; the figure says what this bench can and cannot show)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    body = b"x" * size
    puts, gets = [], []
    for index in range(count):
        started = time.perf_counter()
        client.put_object(Bucket=BUCKET, Key=f"bench/{index}", Body=body)
        puts.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get_object(Bucket=BUCKET, Key=f"bench/{index}")["Body"].read()
        gets.append(time.perf_counter() - started)
    return {
        "put_ms_median": round(statistics.median(puts) * 1000, 2),
        "get_ms_median": round(statistics.median(gets) * 1000, 2),
    }


def measure_smtp(cluster: Cluster, family: str, messages: int, sessions: int, size: int) -> dict:
    """Messages stored per second through HAProxy's `family` frontend, and what each message
    cost the shared services (PostgreSQL commits, Redis commands, S3 objects)."""
    import loadgen

    url = cluster.database.url
    before = (stored_count(url), postgres_commits(url), redis_commands(cluster.redis_url))
    result = loadgen.run_load(
        HAPROXY,
        cluster.front[family],
        messages=messages,
        sessions=sessions,
        size=size,
        reuse=True,
        sender="load@sender.cluster.test",
        recipient=f"alice@{DOMAIN}",
    )
    stored = stored_count(url) - before[0]
    commits = postgres_commits(url) - before[1]
    commands = redis_commands(cluster.redis_url) - before[2]
    return {
        "front_ends": len([n for n in cluster.nodes.values() if n.command == "runsmtp"])
        if family == "smtp"
        else 1,
        "messages": messages,
        "sessions": sessions,
        "size": size,
        "tool": result.tool,
        "stored": stored,
        "seconds": round(result.seconds, 2),
        "stored_per_s": round(stored / result.seconds, 1),
        "pg_commits_per_message": round(commits / max(stored, 1), 2),
        "redis_commands_per_message": round(commands / max(stored, 1), 2),
        "errors": result.errors[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SMTP through HAProxy: one and two front ends")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=10, help="PostgreSQL commit figures")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "topology.json")
    args = parser.parse_args(argv)
    problem = missing()
    if problem:
        print(f"cannot run the topology bench: {problem}", file=sys.stderr)
        return 2
    results: dict = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg()[0],
        }
    }
    with tempfile.TemporaryDirectory(prefix="mailhost-topology-") as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start()
        try:
            results["postgres"] = measure_postgres(cluster.database.url, args.seconds)
            results["redis"] = measure_redis(cluster.redis_url)
            results["s3_moto"] = measure_s3(f"http://{S3_HOST}:{cluster.s3_port}")
            load = (args.messages, args.sessions, args.size)
            measure_smtp(cluster, "smtp", min(200, args.messages), args.sessions, args.size)  # warm
            results["smtp_one_front_end"] = measure_smtp(cluster, "smtp_one", *load)
            results["smtp_two_front_ends"] = measure_smtp(cluster, "smtp", *load)
        finally:
            cluster.stop()
    results["meta"]["loadavg_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
