"""`hotline`: run the service, migrate the database, chat in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import content_cli, poster
from bot.channels.simulator import STYLES, Simulator, SimulatorMessage
from bot.logs import configure_logging
from bot.services import Services
from bot.settings import Settings, SettingsError
from flows.rights import SEED_DIRECTORY
from storage.crypto import new_master_key
from storage.db import create_engine, sessionmaker
from storage.migrate import current_revision, head_revision, upgrade

log = logging.getLogger("hotline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the simulator (and later the webhooks)")
    run.add_argument("--host", help="default: HOST or 127.0.0.1")
    run.add_argument("--port", type=int, help="default: PORT or 8080")
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    chat = commands.add_parser("chat", help="talk to the bot in this terminal")
    chat.add_argument("--style", choices=STYLES, default="sms")
    chat.add_argument("--user", default=None, help="who you are (default: a new person)")
    chat.add_argument("--language", default=None, help="the phone's language, e.g. ru")
    worker = commands.add_parser("worker", help="send what the outbox holds (run as many as "
                                 "needed); serves /healthz and /metrics")
    worker.add_argument("--host", default="127.0.0.1",
                        help="where /healthz and /metrics listen (default: 127.0.0.1)")
    worker.add_argument("--port", type=_port, default=os.environ.get("WORKER_PORT") or "8081",
                        help="default: WORKER_PORT or 8081; 0 serves neither")
    key = commands.add_parser("key", help="encryption keys")
    key.add_argument("action", choices=["new"])
    poster.add_parser(commands)
    content_cli.add_parser(commands)
    directory = commands.add_parser("directory", help="the directory of organisations, in "
                                    "Open Referral HSDS 3.0")
    directory_actions = directory.add_subparsers(dest="action", required=True)
    imports = directory_actions.add_parser(
        "import", help="add or update organisations from HSDS JSON (an organization or service, "
        "a list of them, an API page), a data package (a folder or its datapackage.json), or "
        "a folder of JSON files (as flows/data/directory); all in one transaction")
    imports.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    exports = directory_actions.add_parser("export", help="write every organisation")
    exports.add_argument("--format", choices=["json", "csv"], default="json",
                         help="json: one array of full organizations; csv: a data package "
                         "folder (default: json)")
    exports.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    try:
        configure_logging(os.environ.get("LOG_FORMAT") or "text", logging.INFO)
    except ValueError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    if args.command == "key":
        print(new_master_key())
        return 0
    if args.command == "content":
        return content_cli.run(args)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    if args.command == "poster":
        return poster.run(settings, args)
    if args.command == "db":
        upgrade(settings.database_url, master_key=settings.secret_key)
        print("database schema is up to date")
        return 0
    if args.command == "run":
        return _run(settings, args.host or settings.host, args.port or settings.port)
    if args.command == "worker":
        return asyncio.run(_worker(settings, args.host, args.port))
    if args.command == "directory":
        return asyncio.run(_directory(settings, args))
    return asyncio.run(_chat(settings, args.style, args.user or f"terminal-{uuid.uuid4()}",
                             args.language))


async def _ready(settings: Settings) -> Services:
    current, head = await current_revision(settings.database_url), head_revision()
    if current != head:
        raise SettingsError(
            f"the database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `hotline db upgrade` first"
        )
    return Services.build(settings)


def _run(settings: Settings, host: str, port: int) -> int:
    from bot.web.app import create_app

    async def app() -> web.Application:
        services = await _ready(settings)
        await _seed_directory(services.db)
        return create_app(services)

    try:
        web.run_app(app(), host=host, port=port, access_log=None,
                    print=lambda _: log.info("%s on http://%s:%s", "simulator" if
                                             settings.simulator else "listening", host, port))
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    return 0


async def _seed_directory(db: AsyncEngine) -> None:
    """On first start the directory is empty: it gets the seed in flows/data/directory."""
    from sqlalchemy.exc import IntegrityError

    from storage.directory import DirectoryStore, load_seed

    sessions = sessionmaker(db)
    if not await DirectoryStore(sessions).is_empty():
        return
    try:
        report = await load_seed(sessions, SEED_DIRECTORY)
    except IntegrityError:  # another process loaded it at the same time
        return
    if report.ok:
        log.info("directory: %d organisations loaded from the seed", len(report.created))
    else:
        first = report.rejected[0]
        log.warning("directory: the seed was not loaded, %d rows rejected (first: %s: %s)",
                    len(report.rejected), first.where, first.reason)


async def _directory(settings: Settings, args: argparse.Namespace) -> int:
    from storage.directory import export_csv, export_json, import_paths

    logging.getLogger().setLevel(logging.WARNING)  # the report is the output
    current, head = await current_revision(settings.database_url), head_revision()
    if current != head:
        print(f"hotline: the database schema is at {current or 'nothing'}, the code needs "
              f"{head}: run `hotline db upgrade` first", file=sys.stderr)
        return 2
    engine = create_engine(settings.database_url)
    sessions = sessionmaker(engine)
    try:
        if args.action == "export":
            if args.format == "json":
                count = await export_json(sessions, args.path)
                print(f"{count} organisations written to {args.path}")
            else:
                rows = await export_csv(sessions, args.path)
                print(f"{rows['organizations.csv']} organisations written to {args.path} "
                      f"({sum(rows.values())} rows in {len(rows)} CSV files and "
                      "datapackage.json)")
            return 0
        missing = [p for p in args.paths if not p.exists()]
        if missing:
            print(f"hotline: {missing[0]} does not exist", file=sys.stderr)
            return 2
        report = await import_paths(sessions, args.paths, progress=_progress_bar())
    finally:
        await engine.dispose()
    for note in report.notes:
        print(f"note: {note}")
    if not report.ok:
        for problem in report.rejected:
            print(f"rejected: {problem.where}: {problem.reason}")
        print(f"{len(report.rejected)} rejected: nothing was changed")
        return 1
    print(f"created {len(report.created)}, updated {len(report.updated)}, unchanged "
          f"{len(report.unchanged)} organisations ({report.services} services written)")
    return 0


def _progress_bar() -> Callable[[int, int], None] | None:
    """A bar on stderr while an import checks its records, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        filled = 30 * done // max(total, 1)
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", file=sys.stderr,
              end="\n" if done == total else "", flush=True)

    return show


def _port(value: str) -> int:
    """argparse applies it to WORKER_PORT too (a string default), so the message names both."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"--port (or WORKER_PORT) must be a port number from 0 to 65535, not {value!r}")
    return port


async def _worker(settings: Settings, host: str, port: int) -> int:
    """The sender alone: `hotline run` has one inside; production runs these beside `web`.
    Beside it, unless `port` is 0, /healthz and /metrics for the monitoring."""
    try:
        services = await _ready(settings)
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    if not services.clients:
        await services.close()
        print("hotline: no channel to send through: set TELEGRAM_BOT_TOKEN", file=sys.stderr)
        return 2
    runner = None
    if port:
        from bot.web import health

        app = web.Application()
        app.add_routes(health.routes(services.db, services.metrics))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            await services.close()
            print(f"hotline: cannot serve /healthz and /metrics on {host}:{port} "
                  f"({exc.strerror or exc}): choose another --port or WORKER_PORT, or 0 for "
                  "none", file=sys.stderr)
            return 2
        log.info("worker health and metrics on http://%s:%s", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker sending through %s", ", ".join(sorted(services.clients)))
    try:
        await services.sender_loop().run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        await services.close()
    return 0


async def _chat(settings: Settings, style: str, user: str, language: str | None) -> int:
    # The terminal is the conversation: each turn's INFO line would land in the middle of it.
    logging.getLogger().setLevel(logging.WARNING)
    try:
        services = await _ready(settings)
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    simulator = Simulator(services.engine, services.turns, services.outbox)
    loop = asyncio.get_running_loop()
    print("Type a message and press Enter; an empty line or Ctrl-D ends.", flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return 0
            replies = await simulator.exchange(
                SimulatorMessage(user=user, style=style, text=line.rstrip("\n"),
                                 language_code=language, message_id=str(uuid.uuid4()))
            )
            for reply in replies:
                print(f"\n{reply.text}")
                if reply.choices:
                    print("  ".join(f"[{label}]" for _, label in reply.choices))
            print("> ", end="", flush=True)
    finally:
        await services.close()


if __name__ == "__main__":
    raise SystemExit(main())
