"""An open-loop load generator: requests start on a fixed schedule whatever the server's pace.

Latency is measured from when a request was *due*, not when it went out, so a slow server is
not hidden by the generator waiting for it (the "coordinated omission" wrk2 corrects for).
Runs as its own process and prints one JSON object; only ever connects to 127.0.0.1.

    python -m bench.loadgen --port 18080 --rate 100 --duration 5 --scenario upsert --token ... --tasks 100000
"""

import argparse
import asyncio
import json
import random
import time

from . import bodies

MAX_CONNECTIONS = 256
# gunicorn closes a keep-alive connection idle for 2 s (its --keep-alive default); one idle for
# longer than this is dropped rather than reused, so a request never goes out on a closed socket.
MAX_IDLE_SECONDS = 1.0


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.perf_counter()

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.idle: list[Connection] = []
        self.opened = 0
        self.waiters: asyncio.Queue[Connection] = asyncio.Queue()
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors = 0
        self.rng = random.Random(args.seed)
        self.make = bodies.factory(args.scenario, args, self.rng)

    async def connection(self) -> Connection:
        while self.idle:
            conn = self.idle.pop()
            if time.perf_counter() - conn.idle_since < MAX_IDLE_SECONDS:
                return conn
            conn.writer.close()  # the server may have closed it already
            self.opened -= 1
        if self.opened < min(self.args.connections, MAX_CONNECTIONS):
            self.opened += 1
            return Connection(*await asyncio.open_connection("127.0.0.1", self.args.port))
        return await self.waiters.get()

    def give_back(self, conn: Connection) -> None:
        conn.idle_since = time.perf_counter()
        if self.waiters._getters:  # someone is waiting: hand it over directly
            self.waiters.put_nowait(conn)
        else:
            self.idle.append(conn)

    async def one(self, due: float, request: bytes) -> None:
        conn = await self.connection()
        try:
            status = await asyncio.wait_for(conn.exchange(request), self.args.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            self.errors += 1
            conn.writer.close()
            self.opened -= 1
            return
        self.latencies.append((time.perf_counter() - due) * 1000)
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.give_back(conn)

    async def run(self) -> dict:
        args, pending = self.args, []
        total = int(args.rate * args.duration)
        start = time.perf_counter() + 0.05
        for n in range(total):
            due = start + n / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.ensure_future(self.one(due, self.make(n))))
        sent_by = time.perf_counter()
        _done, not_done = await asyncio.wait(pending, timeout=args.duration + args.timeout) if pending else ((), ())
        for task in not_done:
            task.cancel()
        elapsed = time.perf_counter() - start
        return {
            "offered_rate": args.rate,
            "scheduled": total,
            "completed": len(self.latencies),
            "errors": self.errors + len(not_done),
            "statuses": self.statuses,
            "elapsed": elapsed,
            "send_lag_s": max(0.0, sent_by - (start + args.duration)),
            "achieved_rate": len(self.latencies) / elapsed if elapsed else 0,
            "latency_ms": self.latencies,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--scenario", default="upsert")
    parser.add_argument("--path", default="/d0")
    parser.add_argument("--token", default="")
    parser.add_argument("--tasks", type=int, default=0)
    parser.add_argument("--crew", default="")
    parser.add_argument("--prefix", default="r")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    args.duration = min(args.duration, 120.0)  # bounded whatever the caller asks
    print(json.dumps(asyncio.run(Generator(args).run())))


if __name__ == "__main__":
    main()
