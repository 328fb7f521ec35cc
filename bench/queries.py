"""SQL queries per request, counted in-process with Django's test client against the bench database."""

import json

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from .bodies import upsert_body
from .context import ADMIN_USER, Context
from .rows import CREATE_BODY
from .stats import Row

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def statements(
    client: Client, method: str, path: str, body: dict | None = None, expect: tuple = (200, 201)
) -> tuple[int, int]:
    """(every statement the request sent, BEGIN and COMMIT included; the same without transaction control)."""
    with CaptureQueriesContext(connection) as captured:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
        response = getattr(client, method)(path, **kwargs)
    if response.status_code not in expect:
        raise RuntimeError(f"{method.upper()} {path} answered {response.status_code}: {response.content[:300]!r}")
    sent = [q["sql"].strip().upper() for q in captured.captured_queries]
    return len(sent), sum(1 for sql in sent if not sql.startswith(TRANSACTION_CONTROL))


def count(client: Client, method: str, path: str, body: dict | None = None, expect: tuple = (200, 201)) -> int:
    return statements(client, method, path, body, expect)[0]


def measure_queries(context: Context) -> dict[str, int]:
    api = Client(HTTP_AUTHORIZATION=f"Bearer {context.token}", HTTP_HOST="127.0.0.1")
    prefix = context.prefix()
    create = {**CREATE_BODY, "group_id": context.group_id}
    count(api, "post", "/api/task/", create)  # warm caches (content types, templates, the default set)
    found = {"create": count(api, "post", "/api/task/", create)}
    for nested in (1, 20):
        path = f"/api/express/tasks/upsert/q-{prefix}-{nested}"
        body = upsert_body(nested, context.crew, nested)
        found[f"upsert_new_{nested}"], found[f"work_upsert_new_{nested}"] = statements(api, "put", path, body)
        body = upsert_body(nested + 1, context.crew[::-1], nested)
        found[f"upsert_existing_{nested}"], found[f"work_upsert_existing_{nested}"] = statements(api, "put", path, body)
    found["list"] = count(api, "get", "/api/tasks/")
    token = context.tracker_tokens[0]
    anonymous = Client(HTTP_HOST="127.0.0.1")
    found["bare_get"] = count(anonymous, "get", f"/bench/bare-get/{token}")
    if context.has_tracker:
        first = context.fresh_tokens_file.read_text().split()[-1]  # the last fresh link: no run reaches it
        found["tracker_page_first"] = count(anonymous, "get", f"/t/{first}")
        found["tracker_json_first"] = count(anonymous, "get", f"/t/{first}/status.json")
        found["tracker_page"] = count(anonymous, "get", f"/t/{first}")
        found["tracker_json"] = count(anonymous, "get", f"/t/{first}/status.json")
    admin = Client(HTTP_HOST="127.0.0.1")
    admin.force_login(get_user_model().objects.get(username=ADMIN_USER))
    count(admin, "get", "/admin/tasks/task/")
    found["admin_changelist"] = count(admin, "get", "/admin/tasks/task/")
    found["admin_changelist_p2"] = count(admin, "get", "/admin/tasks/task/?p=2")
    connection.close()
    return found


def queries_rows(found: dict[str, int], context: Context) -> list[Row]:
    upserts = [found[k] for k in found if k.startswith("upsert_")]  # BEGIN/COMMIT counted: the strict reading
    constant = (
        found["upsert_new_1"] == found["upsert_new_20"] and found["upsert_existing_1"] == found["upsert_existing_20"]
    )
    ok = constant and max(upserts) <= 12
    tracker = (
        f", tracker page / JSON first view {found['tracker_page_first']} / {found['tracker_json_first']}, "
        f"repeat view {found['tracker_page']} / {found['tracker_json']}"
        if context.has_tracker
        else ", tracker not yet available"
    )
    work = (
        f" ({found['work_upsert_new_1']} / {found['work_upsert_existing_1']} without BEGIN/COMMIT)"
        if "work_upsert_new_1" in found
        else ""
    )
    value = (
        f"create {found['create']}; upsert new 1 / 20 items {found['upsert_new_1']} / {found['upsert_new_20']}, "
        f"existing 1 / 20 {found['upsert_existing_1']} / {found['upsert_existing_20']}{work}; list {found['list']}"
        f"{tracker}"
    )
    return [Row("queries", "SQL queries per request", value, "", "", "constant; upsert ≤ 12", ok, found)]
