"""Kill and restart: hotline processes killed with SIGKILL while Telegram updates pour in, and
what it cost: inbound lost, replies lost or sent twice, people whose replies came out of order,
429s, and how long the service took to recover after each kill.

PostgreSQL runs `hotline run` (the webhook, with a sender inside) and two `hotline worker`s;
SQLite runs `hotline run` alone. Each is the real command in a process of its own; every few
seconds one of them, at random, gets SIGKILL and is started again at once. The fake Telegram
Bot API (30 messages/s per bot, 1/s per chat, 429s beyond) runs in a process of its own and is
never killed. The load posts updates to the webhook as Telegram does: a chat's updates in order,
each only after the previous one got 200, and the same update again (same update_id and
message_id) after an error or a timeout. People alternate "sos" (the reply lists emergency
numbers) and "help" (the help text), so the order of their replies can be checked without
knowing their conversation's state.

    .venv/bin/python bench/chaos.py --people 1000 --messages 10 \
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--sqlite | --skip-sqlite] \
        [--kill-every 2 5] [--seed 1] [--timeout 600] [--json chaos.json]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import multiprocessing
import os
import platform
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from scratch import scratch_databases
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import new_master_key
from storage.db import create_engine
from storage.models import OutboxItem
from tests.fakes.telegram import FakeTelegram, message_update

HOTLINE = str(Path(sys.executable).with_name("hotline"))
TOKEN = "123456:CHAOS-BENCH"
SECRET = "chaos-bench-webhook-secret"
LEASE_SECONDS = 10  # short, so that a killed worker's rows come back within the run
FIRST_CHAT = 700_000_000
KINDS = ("sos", "help")
POST_TIMEOUT = 10.0


def reply_kind(text: str) -> str:
    """Which message a reply answers: the help text, the emergency numbers, or neither (an
    apology for a failed step also lists the numbers, but answers neither)."""
    if "went wrong" in text:
        return "apology"
    if "free and confidential helpline" in text:
        return "help"
    return "sos" if "112" in text else "other"


# --- the fake, in a process of its own --------------------------------------------------------


def serve_fake(ready: Any, stop: Any) -> None:
    """The fake Bot API, plus GET /bench/sent?since=N: what it accepted from the Nth sendMessage
    on, as [chat_id, kind, monotonic time] (the clock every process on the machine shares)."""

    async def run() -> None:
        fake = FakeTelegram(token=TOKEN, enforce_limits=True)

        async def sent(request: web.Request) -> web.Response:
            since = int(request.query.get("since", "0"))
            return web.json_response({
                "total": len(fake.sent),
                "sent": [[m.chat_id, reply_kind(m.text), m.at] for m in fake.sent[since:]],
                "rate_limited": fake.rate_limited, "violations": fake.violations,
            })

        app = fake.app()
        app.router.add_get("/bench/sent", sent)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, stop.recv)
        await runner.cleanup()

    asyncio.run(run())


# --- the hotline processes --------------------------------------------------------------------


@dataclass
class Role:
    """One hotline process, kept running: when it exits it is started again at once."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None  # answers 200 once the process is up; None: up once started
    process: asyncio.subprocess.Process | None = None
    killed: bool = False  # the last exit was our SIGKILL
    unexpected_exits: int = 0

    async def keep_running(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with self.log_path.open("ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log, stderr=log)
            code = await self.process.wait()
            if stopping.is_set():
                return
            if not self.killed:
                self.unexpected_exits += 1
                print(f"  {self.name} exited by itself (code {code}); starting it again",
                      file=sys.stderr)
                await asyncio.sleep(1)  # a process that cannot start must not spin
            self.killed = False

    def kill(self) -> bool:
        process = self.process
        if process is None or process.returncode is not None:
            return False
        self.killed = True
        process.send_signal(signal.SIGKILL)
        return True

    async def terminate(self, grace: float = 15.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            print(f"  {self.name} ignored SIGTERM for {grace:.0f} s: killed", file=sys.stderr)
            process.send_signal(signal.SIGKILL)
            await process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def up(http: aiohttp.ClientSession, role: Role, until: float) -> float | None:
    """When the role's process answered /healthz with 200 (monotonic), or None by `until`."""
    while time.monotonic() < until:
        process = role.process
        if process is not None and process.returncode is None:
            if role.health_url is None:
                return time.monotonic()
            try:
                async with http.get(role.health_url) as response:
                    if response.status == 200:
                        return time.monotonic()
            except (aiohttp.ClientError, TimeoutError):
                pass
        await asyncio.sleep(0.05)
    return None


async def worker_has_port_flag(env: dict[str, str]) -> bool:
    process = await asyncio.create_subprocess_exec(
        HOTLINE, "worker", "--help", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    out, _ = await process.communicate()
    return b"--port" in out


async def hotline_db_upgrade(env: dict[str, str], log_path: Path) -> None:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(HOTLINE, "db", "upgrade", env=env,
                                                       stdout=log, stderr=log)
        if await process.wait() != 0:
            raise SystemExit(f"hotline db upgrade failed: see {log_path}")


# --- the people -------------------------------------------------------------------------------


@dataclass
class Chat:
    chat_id: int
    kinds: list[str]
    posted: list[float] = field(default_factory=list)  # when each message was first posted
    acked: int = 0


class Load:
    """Telegram's side of the webhook: per chat one update at a time, redelivered until 200."""

    def __init__(self, url: str, chats: list[Chat], concurrency: int) -> None:
        self.url = url
        self.chats = chats
        self.concurrency = concurrency
        self.stop = asyncio.Event()
        self.refused: Counter[str] = Counter()  # why deliveries failed: status or error type

    async def run(self) -> None:
        queue: asyncio.Queue[Chat] = asyncio.Queue()
        for chat in self.chats:
            queue.put_nowait(chat)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def deliverer() -> None:
                while not queue.empty() and not self.stop.is_set():
                    await self._person(session, queue.get_nowait())

            await asyncio.gather(*(deliverer() for _ in range(self.concurrency)))

    async def _person(self, session: aiohttp.ClientSession, chat: Chat) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for index, kind in enumerate(chat.kinds):
            update = {"update_id": (chat.chat_id - FIRST_CHAT) * len(chat.kinds) + index + 1,
                      "message": message_update(chat.chat_id, index + 1, kind)}
            chat.posted.append(time.monotonic())
            backoff = 0.1
            while True:
                if self.stop.is_set():
                    return
                try:
                    async with session.post(self.url, json=update, headers=headers) as response:
                        await response.read()
                        if response.status == 200:
                            break
                        self.refused[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.refused[type(exc).__name__] += 1
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 1.0)
            chat.acked += 1


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Kill:
    at: float
    role: str
    back: float | None = None  # seconds until the restarted process answered /healthz


@dataclass
class Report:
    database: str
    processes: str
    people: int
    messages_each: int
    kill_every: tuple[float, float]
    seed: int
    finished: bool  # everything acknowledged and the outbox drained before the timeout
    wall_seconds: float
    inbound_sent: int
    inbound_acknowledged: int
    inbound_lost: int
    deliveries_refused: dict[str, int]
    replies_expected: int
    replies_received: int
    replies_lost: int
    replies_sent_twice: int
    other_replies: int
    people_out_of_order: int
    apologies: int  # replies saying a step failed: the kind of bug this run should not see
    outbox_resends: int
    outbox_by_status: dict[str, int]
    rate_limited_429: int
    requests_inside_pause: int
    kills: dict[str, int]
    unexpected_exits: int
    tracebacks_in_logs: int
    back_web: list[float]
    back_worker: list[float]
    sending_resumed: list[float]
    round_trip_recovered: list[float]
    kill_log: list[dict[str, Any]]
    disorder: list[dict[str, Any]]  # the people out of order: what they sent and got, when


async def run(database: str, url: str, args: argparse.Namespace, seed: int) -> Report:
    rng = random.Random(seed)
    context = multiprocessing.get_context("spawn")
    ready_recv, ready_send = context.Pipe(duplex=False)
    stop_recv, stop_send = context.Pipe(duplex=False)
    fake_process = context.Process(target=serve_fake, args=(ready_send, stop_recv),
                                   daemon=True)
    fake_process.start()
    fake_port = await asyncio.to_thread(ready_recv.recv)
    fake_url = f"http://127.0.0.1:{fake_port}"

    workdir = Path(tempfile.mkdtemp(prefix="hotline-chaos-"))
    web_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORT", "HOST", "WORKER_PORT", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
                        "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID")}
    env.update({
        "DATABASE_URL": url, "DATA_DIR": str(workdir), "HOTLINE_SECRET_KEY": new_master_key(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}", "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_BASE": fake_url,
        "SENDER_LEASE_SECONDS": str(LEASE_SECONDS), "LOG_FORMAT": "text",
    })
    await hotline_db_upgrade(env, workdir / "upgrade.log")
    roles = [Role("web", [HOTLINE, "run", "--port", str(web_port)], env, workdir / "web.log",
                  f"http://127.0.0.1:{web_port}/healthz")]
    if database != "SQLite":
        # A port each for /healthz (which says when a restarted worker is up), where the
        # worker has one; 0 would serve none.
        health = await worker_has_port_flag(env)
        for n in (1, 2):
            port = free_port()
            roles.append(Role(
                f"worker{n}", [HOTLINE, "worker"] + (["--port", str(port)] if health else []),
                env, workdir / f"worker{n}.log",
                f"http://127.0.0.1:{port}/healthz" if health else None))
    stopping = asyncio.Event()
    keepers = [asyncio.create_task(role.keep_running(stopping)) for role in roles]
    db = create_engine(url, isolation_level="AUTOCOMMIT")  # reads only; no write lock taken
    chats = [Chat(FIRST_CHAT + n, [KINDS[(n + i) % 2] for i in range(args.messages)])
             for n in range(args.people)]
    load = Load(f"http://127.0.0.1:{web_port}/webhooks/telegram", chats, args.concurrency)
    kills: list[Kill] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            for role in roles:
                # Slow on a busy machine: importing aiogram alone takes seconds of CPU.
                if await up(http, role, time.monotonic() + 180) is None:
                    raise SystemExit(f"{role.name} was not up within 180 s: see {workdir}")
            started = time.monotonic()
            deadline = started + args.timeout
            load_task = asyncio.create_task(load.run())

            async def chaos() -> None:
                # The next kill is drawn from when the last one killed is up again: a process
                # takes seconds to start (imports), and killing it sooner would measure only
                # how long it takes to start.
                while True:
                    await asyncio.sleep(rng.uniform(*args.kill_every))
                    role = rng.choice(roles)
                    now = time.monotonic()
                    if not role.kill():
                        continue
                    kill = Kill(now, role.name)
                    kills.append(kill)
                    await asyncio.sleep(0.05)  # the dying process must not answer for itself
                    back = await up(http, role, deadline)
                    if back is None:
                        return
                    kill.back = back - now

            chaos_task = asyncio.create_task(chaos())
            finished = await _until_done(db, http, fake_url, load_task, chats, kills, started,
                                         deadline)
            wall = time.monotonic() - started
            chaos_task.cancel()
            load.stop.set()
            await asyncio.gather(chaos_task, load_task, return_exceptions=True)
            if not load_task.cancelled() and load_task.exception() is not None:
                raise load_task.exception()  # type: ignore[misc]  # a bug in the bench
            stopping.set()
            await asyncio.gather(*(role.terminate() for role in roles))
            await asyncio.gather(*keepers, return_exceptions=True)
            by_status, resends = await _outbox_totals(db)
            log = await _fake_log(http, fake_url, since=0)
    finally:
        stopping.set()
        for role in roles:  # whatever went wrong above, leave no hotline process behind
            role.kill()
        await asyncio.gather(*keepers, return_exceptions=True)
        await db.dispose()
        stop_send.send("stop")
        await asyncio.to_thread(fake_process.join, 10)

    tracebacks = sum(p.read_text(errors="replace").count("Traceback")
                     for p in workdir.glob("*.log"))
    if args.keep_logs:
        print(f"  logs in {workdir}", file=sys.stderr)
    else:
        for p in workdir.iterdir():
            p.unlink()
        workdir.rmdir()
    return _report(database, roles, args, seed, finished, started, wall, chats, load, kills,
                   log, by_status, resends, tracebacks)


async def _until_done(db: AsyncEngine, http: aiohttp.ClientSession, fake_url: str,
                      load_task: asyncio.Task[None], chats: list[Chat], kills: list[Kill],
                      started: float, deadline: float) -> bool:
    """Whether every message was acknowledged and the outbox drained before the deadline."""
    last_progress = started
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        pending = await _pending(db)
        if load_task.done() and pending == 0:
            return all(c.acked == len(c.kinds) for c in chats)
        if time.monotonic() - last_progress >= 10:
            last_progress = time.monotonic()
            accepted = (await _fake_log(http, fake_url, since=10**9))["total"]
            print(f"  {last_progress - started:5.0f} s: acknowledged "
                  f"{sum(c.acked for c in chats)}/{sum(len(c.kinds) for c in chats)}, "
                  f"outbox pending {pending}, replies accepted {accepted}, "
                  f"kills {len(kills)}", file=sys.stderr)
    return False


async def _pending(db: AsyncEngine) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(
            select(func.count()).select_from(OutboxItem)
            .where(OutboxItem.status.in_(("queued", "sending"))))).scalar_one())


async def _outbox_totals(db: AsyncEngine) -> tuple[dict[str, int], int]:
    async with db.connect() as conn:
        rows = (await conn.execute(select(OutboxItem.status, func.count())
                                   .group_by(OutboxItem.status))).all()
        resends = (await conn.execute(select(func.coalesce(func.sum(OutboxItem.resends), 0))
                                      )).scalar_one()
    return {status: int(count) for status, count in rows}, int(resends)


async def _fake_log(http: aiohttp.ClientSession, fake_url: str, since: int) -> dict[str, Any]:
    async with http.get(f"{fake_url}/bench/sent", params={"since": str(since)},
                        timeout=aiohttp.ClientTimeout(total=60)) as response:
        return dict(await response.json())


# --- the report -------------------------------------------------------------------------------


def _common(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b):
            diagonal, row[j + 1] = row[j + 1], (diagonal + 1 if x == y
                                                 else max(row[j + 1], row[j]))
    return row[-1]


def _report(database: str, roles: list[Role], args: argparse.Namespace, seed: int,
            finished: bool, started: float, wall: float, chats: list[Chat], load: Load,
            kills: list[Kill],
            log: dict[str, Any], by_status: dict[str, int], resends: int,
            tracebacks: int) -> Report:
    received: dict[int, list[tuple[str, float]]] = {c.chat_id: [] for c in chats}
    other = apologies = 0
    disorder: list[dict[str, Any]] = []
    for chat_id, kind, at in log["sent"]:
        if kind == "apology":
            apologies += 1
        if kind in ("other", "apology"):
            other += 1
        else:
            received.setdefault(chat_id, []).append((kind, at))
    lost = twice = out_of_order = 0
    # (first posted, reply accepted) per message, for the recovery times
    answered: list[tuple[float, float]] = []
    for chat in chats:
        got = [kind for kind, _ in received[chat.chat_id]]
        acked, posted = chat.kinds[:chat.acked], chat.kinds[:len(chat.posted)]
        # Counted by kind: with two kinds, a lost reply and a duplicate of the same kind in
        # one chat look like a reordering, and are counted as that.
        have = Counter(got)
        lost += sum(max(0, n - have[k]) for k, n in Counter(acked).items())
        # A message posted but never acknowledged (the run timed out) may still be answered.
        twice += sum(max(0, n - Counter(posted)[k]) for k, n in have.items())
        if _common(got, posted) < min(len(got), len(posted)):
            out_of_order += 1
            disorder.append({"chat": chat.chat_id, "posted": posted, "acked": chat.acked,
                             "got": [(k, round(at - started, 3))
                                     for k, at in received[chat.chat_id]],
                             "posted_at": [round(p - started, 3) for p in chat.posted]})
        times = {k: [at for kind, at in received[chat.chat_id] if kind == k] for k in KINDS}
        for kind, first in zip(chat.kinds, chat.posted, strict=False):
            later = bisect.bisect_right(times[kind], first)
            if later < len(times[kind]):
                answered.append((first, times[kind][later]))
    answered.sort()
    soonest = [float("inf")] * (len(answered) + 1)  # soonest reply to a message posted from i on
    for i in range(len(answered) - 1, -1, -1):
        soonest[i] = min(soonest[i + 1], answered[i][1])
    first_posts = [p for p, _ in answered]
    all_replies = sorted(at for _, _, at in log["sent"])
    kill_log = []
    for kill in kills:
        nxt = bisect.bisect_right(all_replies, kill.at)
        resumed = all_replies[nxt] - kill.at if nxt < len(all_replies) else None
        after = soonest[bisect.bisect_right(first_posts, kill.at)]
        round_trip = after - kill.at if after != float("inf") else None
        kill_log.append({"role": kill.role, "at": round(kill.at - started, 3),
                         "back": kill.back, "sending_resumed": resumed,
                         "round_trip_recovered": round_trip})
    acknowledged = sum(c.acked for c in chats)
    return Report(
        database=database,
        processes=" + ".join(r.name for r in roles),
        people=args.people, messages_each=args.messages, kill_every=tuple(args.kill_every),
        seed=seed, finished=finished, wall_seconds=round(wall, 1),
        inbound_sent=sum(len(c.posted) for c in chats),
        inbound_acknowledged=acknowledged,
        inbound_lost=sum(len(c.posted) for c in chats) - acknowledged,
        deliveries_refused=dict(load.refused),
        replies_expected=acknowledged,
        replies_received=sum(len(r) for r in received.values()),
        replies_lost=lost, replies_sent_twice=twice, other_replies=other,
        people_out_of_order=out_of_order, apologies=apologies, disorder=disorder,
        outbox_resends=resends, outbox_by_status=by_status,
        rate_limited_429=int(log["rate_limited"]), requests_inside_pause=int(log["violations"]),
        kills=dict(Counter(k.role for k in kills)),
        unexpected_exits=sum(r.unexpected_exits for r in roles),
        tracebacks_in_logs=tracebacks,
        back_web=[k.back for k in kills if k.role == "web" and k.back is not None],
        back_worker=[k.back for k in kills if k.role != "web" and k.back is not None],
        sending_resumed=[k["sending_resumed"] for k in kill_log
                         if k["sending_resumed"] is not None],
        round_trip_recovered=[k["round_trip_recovered"] for k in kill_log
                              if k["round_trip_recovered"] is not None],
        kill_log=kill_log,
    )


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s "
            f"({len(values)})")


def print_report(r: Report) -> None:
    refused = ", ".join(f"{k} {v}" for k, v in sorted(r.deliveries_refused.items())) or "none"
    kills = ", ".join(f"{k} {v}" for k, v in sorted(r.kills.items())) or "none"
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(r.outbox_by_status.items()))
    rows = [
        ("processes", f"{r.processes}; {r.people} people x {r.messages_each} messages; a kill "
                      f"every {r.kill_every[0]:g}-{r.kill_every[1]:g} s; seed {r.seed}"),
        ("finished", "yes" if r.finished else "NO: timed out (see the outbox below)"),
        ("wall time", f"{r.wall_seconds:.1f} s"),
        ("inbound sent", r.inbound_sent),
        ("inbound acknowledged", r.inbound_acknowledged),
        ("inbound lost (never acknowledged)", r.inbound_lost),
        ("deliveries refused, retried", refused),
        ("replies expected", r.replies_expected),
        ("replies received", r.replies_received),
        ("replies lost", r.replies_lost),
        ("replies sent twice", r.replies_sent_twice),
        ("outbox resends (counted in-flight)", r.outbox_resends),
        ("other replies (neither sos nor help)", r.other_replies),
        ("people out of order", f"{r.people_out_of_order} of {r.people}"),
        ("apologies (a step failed)", r.apologies),
        ("429s from the fake", r.rate_limited_429),
        ("requests inside a pause", r.requests_inside_pause),
        ("outbox at the end", statuses),
        ("kills", kills),
        ("exits we did not cause", r.unexpected_exits),
        ("tracebacks in the processes' logs", r.tracebacks_in_logs),
        ("web up again       min/median/max", _spread(r.back_web)),
        ("worker up again    min/median/max", _spread(r.back_worker)),
        ("sending resumed    min/median/max", _spread(r.sending_resumed)),
        ("round trip again   min/median/max", _spread(r.round_trip_recovered)),
    ]
    print(f"\n{r.database}")
    for label, value in rows:
        print(f"  {label:38s} {value}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"),
                        help="a PostgreSQL server URL; a scratch database is made and dropped")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sqlite", action="store_true", help="SQLite only")
    which.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10, help="per person")
    parser.add_argument("--concurrency", type=int, default=50, help="chats delivered at once")
    parser.add_argument("--kill-every", type=float, nargs=2, default=[2.0, 5.0],
                        metavar=("MIN", "MAX"), help="seconds from a killed process being up "
                        "again to the next kill, drawn uniformly")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per database")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the hotline processes' logs (the path is printed)")
    args = parser.parse_args()
    if args.skip_sqlite and not args.postgres:
        parser.error("--skip-sqlite needs --postgres")
    if not 0 < args.kill_every[0] <= args.kill_every[1]:
        parser.error("--kill-every MIN MAX: 0 < MIN <= MAX")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}")
    print(f"sender lease {LEASE_SECONDS} s. Times after a kill: 'up again' until the restarted "
          "process answers /healthz with 200 (the next kill is drawn from then); 'sending "
          "resumed' until the fake accepts any reply; 'round trip again' until it accepts a "
          "reply to a message first posted after the kill", flush=True)
    reports = []
    async for name, url in scratch_databases(None if args.sqlite else args.postgres):
        if name == "SQLite" and args.skip_sqlite:
            continue
        print(f"\n{name}: running", file=sys.stderr)
        report = await run(name, url, args, args.seed)
        print_report(report)
        reports.append(report)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=1))


if __name__ == "__main__":
    asyncio.run(main())
