"""Request bodies the rows send; bench/lua/*.lua builds the same ones inside wrk."""

import argparse
import json
import random
from collections.abc import Callable


def upsert_body(n: int, crew: list[int], nested: int = 2) -> dict:
    """Customer fields and address, `nested` additional addresses and `nested` crew ids."""
    return {
        "title": f"Bench upsert {n}",
        "details": "Replace the filter and check the pressure.",
        "start_datetime": "2026-03-02T09:00:00Z",
        "end_datetime": "2026-03-02T11:00:00Z",
        "customer_first_name": "Ana",
        "customer_last_name": "Chen",
        "customer_email": f"cust{n}@bench.test",
        "customer_mobile_number": "+12125550100",
        "customer_address_line_1": "12 Main St",
        "customer_city": "Springfield",
        "customer_zipcode": "62701",
        "additional_addresses": [
            {"address_line_1": f"{k + 1} Side St", "city": "Springfield", "zipcode": "62702"} for k in range(nested)
        ],
        "entity_ids": [crew[(n + k) % len(crew)] for k in range(nested)],
    }


def upsert_path(n: int, tasks: int, prefix: str, rng: random.Random) -> str:
    """Half the requests update a seeded task, half create a new one."""
    if n % 2 == 0 and tasks:
        return f"/api/express/tasks/upsert/ext-{rng.randrange(tasks)}"
    return f"/api/express/tasks/upsert/new-{prefix}-{n}"


def http_request(method: str, path: str, token: str = "", body: dict | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def factory(scenario: str, args: argparse.Namespace, rng: random.Random) -> Callable[[int], bytes]:
    """What the open-loop generator sends for request number n."""
    if scenario == "upsert":
        crew = [int(c) for c in args.crew.split(",") if c]

        def upsert(n: int) -> bytes:
            path = upsert_path(n, args.tasks, args.prefix, rng)
            return http_request("PUT", path, args.token, upsert_body(n, crew))

        return upsert
    if scenario == "sink":
        return lambda n: http_request("POST", args.path, body={"n": n})
    return lambda n: http_request("GET", args.path, args.token)
