"""The `hotline` command as a newcomer runs it, in real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.crypto import new_master_key

HOTLINE = str(Path(sys.executable).with_name("hotline"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
            "HOTLINE_SECRET_KEY": new_master_key(), "PYTHONUNBUFFERED": "1"}


def hotline(*args: str, env: dict[str, str],
            stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([HOTLINE, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [HOTLINE, "run", "--port", str(self.port)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                assert self.process.poll() is None, self.process.stdout.read()  # type: ignore
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def say(self, user: str, text: str, message_id: str) -> list[dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/simulator/messages",
            data=json.dumps({"user": user, "text": text, "channel": "sms",
                             "message_id": message_id}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["replies"]

    def kill(self) -> str:
        self.process.send_signal(signal.SIGKILL)
        output, _ = self.process.communicate(timeout=10)
        return output


@pytest.fixture
def started(env: dict[str, str]) -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.kill()


def test_run_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    result = hotline("run", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "run `hotline db upgrade` first" in result.stderr


def test_db_upgrade_creates_a_private_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "new" / "var"  # neither folder exists yet
    env = {**os.environ, "DATA_DIR": str(data), "HOTLINE_SECRET_KEY": new_master_key()}
    env.pop("DATABASE_URL", None)
    result = hotline("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "hotline.db").stat().st_mode) == 0o600


def test_a_killed_server_loses_nothing(env: dict[str, str], started: list[Server]) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    server = Server(env)
    started.append(server)
    assert "Choose your language" in server.say("p1", "hi", "1")[0]["text"]
    assert "Is it safe" in server.say("p1", "1", "2")[0]["text"]
    log = server.kill()
    for text in ("hi", "p1"):
        assert f" {text}" not in log.replace("simulator on", "")  # nothing personal logged

    server = Server(env)
    started.append(server)
    assert server.say("p1", "1", "2") == []  # a redelivery of a processed message
    assert "Which country" in server.say("p1", "yes", "3")[0]["text"]


def test_chat_in_the_terminal(env: dict[str, str]) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    result = hotline("chat", "--language", "ru", env=env, stdin="hi\n2\nsos\n\n")
    assert result.returncode == 0, result.stderr
    assert "2. Русский" in result.stdout
    assert "112" in result.stdout
    assert "INFO" not in result.stdout + result.stderr  # only the conversation on the terminal


def test_key_new_prints_a_usable_key() -> None:
    result = subprocess.run([HOTLINE, "key", "new"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    from storage.crypto import parse_master_key

    assert len(parse_master_key(result.stdout)) == 32
