"""The systemd units in contrib/systemd: valid for `systemd-analyze verify` (with ExecStart
pointed at this test's interpreter, since verify wants the binary to exist), and holding what
README's production guide promises: the contract's commands, the environment file, the
unprivileged user with only CAP_NET_BIND_SERVICE where low ports are bound, the hardening, and
a stop timeout above the shutdown grace."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands

UNITS_DIR = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
INSTALL_PYTHON = "/opt/mailhost/.venv/bin/python"
INSTALL_GUNICORN = "/opt/mailhost/.venv/bin/gunicorn"
SERVICES = sorted(p.name for p in UNITS_DIR.glob("*.service"))
# Units whose listeners bind ports below 1024 by default.
LOW_PORT_UNITS = {
    "mailhost.service",
    "mailhost-smtp.service",
    "mailhost-imap.service",
    "mailhost-pop3.service",
}


def read_unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(UNITS_DIR / name)
    return parser


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_the_units_are_there():
    assert set(SERVICES) == {
        "mailhost.service",
        "mailhost-smtp.service",
        "mailhost-imap.service",
        "mailhost-pop3.service",
        "mailhost-managesieve.service",
        "mailhost-web.service",
        "mailhost-rqworker@.service",
    }
    assert (UNITS_DIR / "mailhost-split.target").exists()


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd)",
)
def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "gunicorn").exists(), "gunicorn is in requirements.txt"
    for path in UNITS_DIR.iterdir():
        text = path.read_text()
        text = text.replace(INSTALL_PYTHON, sys.executable)
        text = text.replace(INSTALL_GUNICORN, str(venv_bin / "gunicorn"))
        (tmp_path / path.name).write_text(text)
    names = [n for n in SERVICES if not n.endswith("@.service")]
    names += ["mailhost-rqworker@1.service", "mailhost-split.target"]
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    # verify exits 0 on unknown keys and unparsable values, only warning: none may be printed.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("name", SERVICES)
def test_unit_runs_a_contract_command_as_the_mailhost_user(name):
    service = read_unit(name)["Service"]
    argv = shlex.split(service["ExecStart"])
    if name == "mailhost-web.service":
        assert argv[0] == INSTALL_GUNICORN and argv[-1] == "mailhost.wsgi"
    else:
        assert argv[:2] == [INSTALL_PYTHON, "/opt/mailhost/manage.py"]
        assert argv[2] in get_commands()  # a command this checkout has
        expected = {
            "mailhost.service": "runmail",
            "mailhost-smtp.service": "runsmtp",
            "mailhost-imap.service": "runimap",
            "mailhost-pop3.service": "runpop3",
            "mailhost-managesieve.service": "runmanagesieve",
            "mailhost-rqworker@.service": "rqworker",
        }[name]
        assert argv[2] == expected
    assert service["User"] == service["Group"] == "mailhost"
    assert service["EnvironmentFile"] == "/etc/mailhost/env"
    assert service["WorkingDirectory"] == "/opt/mailhost"


@pytest.mark.parametrize("name", SERVICES)
def test_unit_is_hardened_and_writes_only_the_data_dir(name):
    service = read_unit(name)["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "UMask": "0077",
        "StateDirectory": "mailhost",
        "StateDirectoryMode": "0700",
    }.items():
        assert service.get(key) == value, key
    assert service["ReadWritePaths"].split() == ["/var/lib/mailhost"]
    assert service["Environment"] == "MAILHOST_DATA_DIR=/var/lib/mailhost"


@pytest.mark.parametrize("name", SERVICES)
def test_only_listeners_on_low_ports_get_cap_net_bind_service(name):
    service = read_unit(name)["Service"]
    if name in LOW_PORT_UNITS:
        assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
        assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    else:
        assert "AmbientCapabilities" not in service
        assert service["CapabilityBoundingSet"] == ""


@pytest.mark.parametrize("name", SERVICES)
def test_stop_waits_longer_than_the_shutdown_grace(name):
    service = read_unit(name)["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert seconds(service["TimeoutStopSec"]) > settings.MAILHOST_SHUTDOWN_GRACE


def test_env_example_names_documented_settings():
    readme = (UNITS_DIR.parents[1] / "README.md").read_text()
    documented = {
        name.strip()
        for row in re.findall(r"^\| ([^|]+) \|", readme, re.M)
        for name in row.split(",")
    }
    names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (UNITS_DIR / "env.example").read_text(), re.M)
    assert "MAILHOST_HOSTNAME" in names and "DATABASE_URL" in names
    assert [n for n in names if n not in documented] == []
