"""A local webhook receiver for the bench: answers after 0 ms (POST /d0) or 50 ms (POST /d50).

Runs as its own process (`python -m bench.sink --port N`) on asyncio, one connection per
protocol, keep-alive. It counts what arrives and, per `webhook-id`, the first arrival time less
the payload's `timestamp` (set when the event was written, just before its commit): GET /_stats
returns them, POST /_reset clears them. Only ever listens on 127.0.0.1.
"""

import argparse
import asyncio
import json
import re
import time
from datetime import datetime

TIMESTAMP = re.compile(rb'"timestamp":"([^"]+)"')
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.started = time.time()
        self.first_seen: dict[str, float] = {}
        self.latency_ms: list[float] = []

    def record(self, headers: dict[bytes, bytes], body: bytes) -> None:
        self.count += 1
        msg_id = headers.get(b"webhook-id")
        if msg_id is None or msg_id in self.first_seen:
            return
        now = time.time()
        self.first_seen[msg_id] = now
        match = TIMESTAMP.search(body, 0, 200)
        if match:
            emitted = datetime.fromisoformat(match.group(1).decode().replace("Z", "+00:00")).timestamp()
            self.latency_ms.append((now - emitted) * 1000)

    def stats(self) -> bytes:
        return json.dumps(
            {"count": self.count, "unique": len(self.first_seen), "since": self.started, "latency_ms": self.latency_ms}
        ).encode()


STATE = State()


class SinkProtocol(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.busy = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buffer[:head_end].split(b"\r\n")
            method, path = lines[0].split(b" ")[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            delay = self.handle(method, path, headers, body)
            if delay:
                self.busy = True
                asyncio.get_running_loop().call_later(delay, self.reply_later)
                return

    def handle(self, method: bytes, path: bytes, headers: dict, body: bytes) -> float:
        if path == b"/_stats":
            payload = STATE.stats()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )
            return 0
        if path == b"/_reset":
            STATE.reset()
            self.transport.write(OK)
            return 0
        if method == b"POST":
            STATE.record(headers, body)
        delay_ms = int(path[2:] or 0) if path.startswith(b"/d") and path[2:].isdigit() else 0
        if delay_ms:
            return delay_ms / 1000
        self.transport.write(OK)
        return 0

    def reply_later(self) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(OK)
        self.busy = False
        self.process()


async def serve(port: int, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(lifetime)  # bounded: the sink stops by itself if the harness dies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=3600)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.lifetime))


if __name__ == "__main__":
    main()
