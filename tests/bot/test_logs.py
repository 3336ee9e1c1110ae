"""`LOG_FORMAT=json`: one JSON object per line, and nothing a person wrote in any of them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from pathlib import Path

import aiohttp
import pytest

from bot.logs import JsonFormatter, configure_logging
from storage.crypto import new_master_key
from tests.bot.test_telegram_processes import free_port, serving, start, stop

BODY = "my husband took my passport 7741"


def json_lines(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.propagate = False
    return logger, out


def fail_with(text: str) -> None:
    raise ValueError(text)


def test_a_record_is_one_json_object() -> None:
    logger, out = json_lines("tests.logs.plain")
    logger.warning("outbox %s failed: %s", 17, "timeout")
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "tests.logs.plain"
    assert record["message"] == "outbox 17 failed: timeout"
    assert record["time"].endswith("+00:00")
    assert "exc_type" not in record


def test_an_exception_is_its_type_and_frames_never_its_text() -> None:
    logger, out = json_lines("tests.logs.exception")
    try:
        try:
            fail_with(BODY)
        except ValueError as exc:
            raise RuntimeError(f"step failed on {exc}") from exc
    except RuntimeError:
        logger.exception("turn failed")
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "turn failed"
    assert record["exc_type"] == "RuntimeError"
    assert "test_an_exception_is_its_type_and_frames_never_its_text" in record["traceback"]
    assert "7741" not in line and "passport" not in line


def test_a_wrong_format_is_refused() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of text, json, not 'xml'"):
        configure_logging("xml")


async def test_the_service_logs_json_lines_without_bodies(database_url: str,
                                                          tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
           "HOTLINE_SECRET_KEY": new_master_key(), "PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json"}
    port = free_port()
    process = await start("run", "--port", str(port), env=env)
    try:
        await serving(port)
        async with aiohttp.ClientSession() as http:
            for n, text in enumerate(["hello", BODY, "1", BODY]):
                async with http.post(f"http://127.0.0.1:{port}/api/simulator/messages", json={
                        "user": "+79991234567", "text": text, "channel": "sms",
                        "message_id": str(n)}) as response:
                    assert response.status == 200
    finally:
        output = await stop(process)
    lines = output.splitlines()
    records = [json.loads(line) for line in lines]  # every line, or this raises
    assert any(r["message"].startswith("simulator on http://") for r in records)
    assert "7741" not in output and "passport" not in output and "79991234567" not in output


async def test_a_wrong_log_format_stops_start_up(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "LOG_FORMAT": "yaml"}
    process = await start("run", env=env)
    output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    assert process.returncode == 2
    assert output.strip() == "hotline: LOG_FORMAT must be one of text, json, not 'yaml'"
