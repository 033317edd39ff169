"""The two baselines our notifier is measured against, each run as its own process.

    python -m bench.senders spec       # consume notifier.events the way the seed sends (until SIGTERM)
    python -m bench.senders ceiling N  # N bare sendMessage POSTs with aiohttp, then exit
    python -m bench.senders ptb        # python-telegram-bot + AIORateLimiter (until SIGTERM)

`spec` is the seed's Flask integration (`send_sns_notification`) put behind the same RabbitMQ queue:
for each event, one at a time, a synchronous database lookup of the user's chat id (psycopg, one
kept connection: kinder than the seed's ORM query) and a blocking `requests.post` to sendMessage
(a new connection each time, as a bare `requests.post` does). Like the seed it does not retry: a
failed send is counted and the event acknowledged ("graceful degradation").

`ceiling` has no broker, no database and no parsing: aiohttp POSTs of ready-made sendMessage bodies
with 64 requests in flight. Nothing written in Python sends faster on this machine, so it bounds
what any Python notifier could reach against this stand-in.

Both read DATABASE_URL, RABBITMQ_URL and TELEGRAM_API_BASE like our services.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import signal
import sys
import time
from typing import Any

TOKEN = "1:local-stand-in"


def render_failure(data: dict[str, Any], occurred_at: str) -> str:
    """The seed's post-failure text, formatted with an f-string."""
    platform = html.escape(str(data.get("platform", "")).title())
    error = html.escape(str(data.get("error", "")))
    return (
        f"❌ SNS 게시 실패\n\n📱 플랫폼: {platform}\n⚠️ 오류: {error}\n"
        f"⏰ {occurred_at}\n\n자세한 내용은 대시보드에서 확인하세요."
    )


async def spec() -> None:
    """Consume `notifier.events` one message at a time with blocking calls, until SIGTERM."""
    import aio_pika
    import psycopg
    import requests

    from shared.db import libpq_url

    api = os.environ["TELEGRAM_API_BASE"].rstrip("/") + f"/bot{TOKEN}/sendMessage"
    db = psycopg.connect(libpq_url(os.environ["DATABASE_URL"]), autocommit=True)
    counts = {"sent": 0, "failed": 0, "skipped": 0}

    def send_sns_notification(user_id: str, type_: str, data: dict[str, Any], at: str) -> None:
        row = db.execute(
            "SELECT chat_id, enabled FROM telegram_links WHERE user_id = %s", (user_id,)
        ).fetchone()
        if row is None or not row[1]:
            counts["skipped"] += 1
            return
        text = render_failure(data, at)
        try:
            answer = requests.post(
                api, json={"chat_id": row[0], "text": text, "parse_mode": "HTML"}, timeout=10
            )
            counts["sent" if answer.ok else "failed"] += 1
        except requests.RequestException:
            counts["failed"] += 1

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        send_sns_notification(event["user_id"], event["type"], event["data"], event["occurred_at"])
        await message.ack()

    connection = await aio_pika.connect(os.environ["RABBITMQ_URL"])
    channel = await connection.channel()
    # Prefetch only saves broker round trips; the blocking handler still runs one at a time.
    await channel.set_qos(prefetch_count=100)
    queue = await channel.get_queue("notifier.events")
    await queue.consume(on_message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("spec-style sender consuming notifier.events", flush=True)
    await stop.wait()
    await connection.close()
    print(json.dumps(counts), flush=True)


async def ptb(concurrency: int = 64) -> None:
    """Consume `notifier.events` and send with python-telegram-bot and its `AIORateLimiter` at
    Telegram's documented limits (30/s, 20/min per group), retrying a 429 after its retry_after
    (which halts every request meanwhile), until SIGTERM. Chat ids follow the benchmarks'
    seeding (`bench.harness.bench_users`: user bench-i has chat 7,000,000,000 + i)."""
    import aio_pika
    from telegram.constants import ParseMode
    from telegram.error import TelegramError
    from telegram.ext import AIORateLimiter, ExtBot
    from telegram.request import HTTPXRequest

    counts = {"sent": 0, "failed": 0}
    work: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    bot = ExtBot(
        TOKEN,
        base_url=os.environ["TELEGRAM_API_BASE"].rstrip("/") + "/bot",
        request=HTTPXRequest(connection_pool_size=concurrency),
        rate_limiter=AIORateLimiter(max_retries=50),
    )

    async def worker() -> None:
        while True:
            message = await work.get()
            event = json.loads(message.body)
            chat = 7_000_000_000 + int(event["user_id"].rsplit("-", 1)[1])
            try:
                text = render_failure(event["data"], event["occurred_at"])
                await bot.send_message(chat, text, parse_mode=ParseMode.HTML)
                counts["sent"] += 1
            except TelegramError:
                counts["failed"] += 1
            await message.ack()

    async with bot:
        connection = await aio_pika.connect(os.environ["RABBITMQ_URL"])
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue("notifier.events")
        await queue.consume(work.put)
        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("python-telegram-bot sender consuming notifier.events", flush=True)
        await stop.wait()
        for task in workers:
            task.cancel()
        await connection.close()
    print(json.dumps(counts), flush=True)


async def ceiling(count: int, concurrency: int = 64) -> None:
    """POST `count` sendMessage requests with aiohttp, `concurrency` at a time; print the rate."""
    import aiohttp

    api = os.environ["TELEGRAM_API_BASE"].rstrip("/") + f"/bot{TOKEN}/sendMessage"
    headers = {"Content-Type": "application/json"}
    work = iter(range(count))
    started = time.perf_counter()
    cpu = time.process_time()

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in work:
            body = json.dumps(
                {
                    "chat_id": 7_000_000_000 + i % 2000,
                    "text": f"❌ SNS 게시 실패\n\n⚠️ 오류: bench #{i}",
                    "parse_mode": "HTML",
                },
                ensure_ascii=False,
            ).encode()
            async with session.post(api, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"sendMessage answered {answer.status}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    used = time.process_time() - cpu
    print(json.dumps({"seconds": elapsed, "cpu_ms_per_message": used * 1000 / count}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["spec"]:
        asyncio.run(spec())
    elif sys.argv[1:2] == ["ptb"]:
        asyncio.run(ptb())
    elif sys.argv[1:2] == ["ceiling"]:
        asyncio.run(ceiling(int(sys.argv[2])))
    else:
        sys.exit(__doc__)
