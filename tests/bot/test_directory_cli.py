"""`hotline directory import|export` and the seed loaded on first start, in real processes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from storage.crypto import new_master_key
from tests.bot.test_cli import HOTLINE, Server, hotline

EXAMPLES = Path(__file__).resolve().parents[1] / "storage" / "hsds_examples"
SEED = Path(__file__).resolve().parents[2] / "flows" / "data" / "directory"


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
            "HOTLINE_SECRET_KEY": new_master_key(), "PYTHONUNBUFFERED": "1"}


def test_import_reports_and_is_idempotent_then_exports_both_forms(
        env: dict[str, str], tmp_path: Path) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    result = hotline("directory", "import", str(EXAMPLES / "csv"), env=env)
    assert result.returncode == 0, result.stderr
    assert "created 1, updated 0, unchanged 0 organisations (1 services written)" in result.stdout
    assert "note: taxonomies.csv row 2: taxonomy 5c4d79d7" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    again = hotline("directory", "import", str(EXAMPLES / "organization_full.json"), env=env)
    assert "created 0, updated 1, unchanged 0" in again.stdout  # the JSON says more than the CSV

    out = tmp_path / "out.json"
    result = hotline("directory", "export", "--format", "json", str(out), env=env)
    assert result.stdout.strip() == f"1 organisations written to {out}"
    assert json.loads(out.read_text(encoding="utf-8"))[0]["name"] == "Example Organization Inc."
    package = tmp_path / "package"
    result = hotline("directory", "export", "--format", "csv", str(package), env=env)
    assert result.returncode == 0 and (package / "datapackage.json").exists()
    assert len(list(package.glob("*.csv"))) == 21
    result = hotline("directory", "import", str(package), env=env)
    assert "created 0, updated 0, unchanged 1" in result.stdout


def test_a_rejected_file_exits_1_and_says_nothing_changed(
        env: dict[str, str], tmp_path: Path) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    bad = tmp_path / "bad.json"
    data = json.loads((EXAMPLES / "organization_full.json").read_text(encoding="utf-8"))
    del data["name"]
    bad.write_text(json.dumps(data), encoding="utf-8")
    result = hotline("directory", "import", str(bad), env=env)
    assert result.returncode == 1
    assert "rejected: bad.json: $: 'name' is a required property" in result.stdout
    assert "1 rejected: nothing was changed" in result.stdout
    out = tmp_path / "out.json"
    hotline("directory", "export", str(out), env=env)
    assert json.loads(out.read_text(encoding="utf-8")) == []
    missing = hotline("directory", "import", str(tmp_path / "nothing.json"), env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_terminal_sees_a_progress_bar(env: dict[str, str]) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([HOTLINE, "directory", "import", str(EXAMPLES / "csv")],
                                env=env, stdout=subprocess.PIPE, stderr=terminal, text=True,
                                timeout=60)
        shown = os.read(controller, 4096).decode()
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 0
    assert f"[{'#' * 30}] 1/1" in shown


def test_the_first_start_loads_the_seed(env: dict[str, str], tmp_path: Path) -> None:
    assert hotline("db", "upgrade", env=env).returncode == 0
    seeded = {org["id"] for path in SEED.glob("*.json")
              for org in json.loads(path.read_text(encoding="utf-8"))}
    server = Server(env)
    try:
        out = tmp_path / "out.json"
        assert hotline("directory", "export", str(out), env=env).returncode == 0
        assert {org["id"] for org in json.loads(out.read_text(encoding="utf-8"))} == seeded
    finally:
        server.kill()
