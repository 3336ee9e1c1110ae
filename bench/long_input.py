"""CPU cost of one message of the largest allowed size, at each step that matches choices.

One full turn through the real engine with the simulator channel (keywords, choice matching,
the transaction, delivery from the outbox), timed with process time so that waiting on the
database does not count. Several shapes of text per step, because matching costs differ by
shape: prose, one long word, and punctuation runs.

    .venv/bin/python bench/long_input.py [--chars 10000] \
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratch import scratch_databases

from bot.channels.simulator import Simulator, SimulatorMessage
from bot.services import Services
from bot.settings import Settings

# What a person sends to reach each step, from a new conversation.
STEPS: dict[str, list[str]] = {
    "welcome language": ["hi"],
    "welcome safety": ["hi", "1"],
    "welcome country": ["hi", "1", "1"],
    "menu": ["hi", "1", "1", "ES"],
    "settings": ["hi", "1", "1", "ES", "2"],
    "settings language": ["hi", "1", "1", "ES", "2", "1"],
    "settings country": ["hi", "1", "1", "ES", "2", "2"],
}


def shapes(chars: int) -> dict[str, str]:
    rng = random.Random(1)
    words = ["help", "spain", "english", "russia", "please", "menu", "settings", "yes", "no",
             "помогите", "испания", "مساعدة", "language", "country", "emergency", "stop"]
    prose = " ".join(rng.choice(words) for _ in range(chars))[:chars]
    letters = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(chars))
    return {
        "prose": prose,
        "one word": letters,
        "label x n": ("Spain " * chars)[:chars],
        "a!!!..!a": "a" + "!" * (chars - 2) + "a",  # punctuation inside
        "marks": "a" + "\u0301\u0316" * (chars // 2),  # marks of two classes, alternating
        "tibetan": "\u0f73" * chars,  # decomposes into marks of two classes
        "ligature": "\ufdfa" * chars,  # NFKC makes 18 letters of each
    }


async def one_turn_cpu(services: Services, path: list[str], text: str) -> float:
    simulator = Simulator(services.engine, services.turns, services.outbox)
    user = f"bench-{uuid.uuid4().hex[:8]}"
    def send(body: str) -> SimulatorMessage:
        return SimulatorMessage(user=user, style="sms", text=body, message_id=str(uuid.uuid4()))

    for body in path:
        await simulator.exchange(send(body))
    started = time.process_time()
    replies = await simulator.exchange(send(text))
    spent = time.process_time() - started
    assert replies, "every message is answered"
    return spent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chars", type=int, default=10_000)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{args.chars}-character messages, CPU ms of one turn")
    texts = shapes(args.chars)
    async for name, url in scratch_databases(args.postgres):
        settings = Settings(database_url=url, secret_key=bytes(32),
                            data_dir=Path(tempfile.mkdtemp(prefix="bench-")))
        services = Services.build(settings)
        try:
            await one_turn_cpu(services, ["hi"], "warm up")
            print(f"\n{name}")
            print(f"{'step':<18}{'short':>7}" + "".join(f"{shape:>10}" for shape in texts))
            for step, path in STEPS.items():
                short = await one_turn_cpu(services, path, "xyzzy")
                costs = [await one_turn_cpu(services, path, text) for text in texts.values()]
                print(f"{step:<18}{short * 1000:>7.1f}"
                      + "".join(f"{cost * 1000:>10.1f}" for cost in costs))
        finally:
            await services.close()


if __name__ == "__main__":
    asyncio.run(main())
