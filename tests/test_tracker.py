"""The customer tracker page at /t/{token}: every state, what it must never show, its JSON and its forms."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils import timezone, translation

from taskhub.cache import NOTE
from taskhub.ratelimit import redis_client
from tasks import tracker, tracker_views
from tasks.models import Attachment, Person, Rating, StatusType, Task, TaskAddress, TaskStatus
from tasks.services import task_assign, task_delete, task_rate, task_report_status
from tasks.tracker_security import contrast, theme_css
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10 a.m. in New York (EST)


@pytest.fixture(autouse=True)
def _plain_static(settings):
    """Tests run without collectstatic: plain static storage, so {% static %} needs no manifest."""
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_post_limits(settings):
    """Posting limits are counted in Redis (or the cache) across tests; start each test at zero."""
    if settings.REDIS_URL:
        client = redis_client(settings.REDIS_URL)
        for key in client.scan_iter("taskhub:rl:tracker:*"):
            client.delete(key)
    else:
        cache.clear()


def make_task(org, **fields) -> Task:
    fields = {"title": "Boiler service", "start_datetime": START, **fields}
    task = Task.objects.create(organization=org, **fields)
    TaskStatus.objects.create(organization=org, task=task, type=task.status, source=TaskStatus.Source.SYSTEM,
                              notes="Task created")  # fmt: skip
    TaskAddress.objects.create(task=task, address_line_1="12 Elm Street", city="Springfield", zipcode="01101",
                               lat=42.1, lng=-72.59)  # fmt: skip
    return task


def crew_member(org, first_name: str = "Dana", **fields) -> Person:
    email = f"{first_name.lower()}@crew.example"
    return Person.objects.create(organization=org, first_name=first_name, last_name="Privatesurname", is_crew=True,
                                 email=email, phone="+12125550199", **fields)  # fmt: skip


def page(task: Task, client: Client | None = None, **extra):
    return (client or Client()).get(f"/t/{task.url_safe_id}", **extra)


def status_json(task: Task, client: Client | None = None, **extra):
    return (client or Client()).get(f"/t/{task.url_safe_id}/status.json", **extra)


def text_of(response) -> str:
    """The page's visible words, roughly: tags dropped, whitespace squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def current_step(response) -> str:
    match = re.search(r'class="step step-current"[^>]*>\s*<span[^>]*></span>\s*<span class="step-label">([^<]+)<',
                      response.content.decode())  # fmt: skip
    return match.group(1) if match else ""


# --- States ----------------------------------------------------------------------------------


def test_scheduled_task_shows_org_title_status_and_time_in_the_org_time_zone(org):
    org.brand_color = "#0a7d4f"
    org.save()
    task = make_task(org)
    response = page(task)
    assert response.status_code == 200
    words = text_of(response)
    assert "Acme Field Services" in words
    assert "Boiler service" in words
    assert current_step(response) == "Scheduled"
    assert "Tuesday, March 3, 2026 at 10 a.m. EST" in words
    assert 'datetime="2026-03-03T10:00:00-05:00"' in response.content.decode()
    assert "12 Elm Street" in words
    assert "01101 Springfield" in words
    assert 'href="/t/theme/0a7d4f.css"' in response.content.decode()


def test_time_window_opens_before_the_start_and_closes_at_the_end_in_the_org_time_zone(org):
    task = make_task(
        org, enable_time_window_display=True, time_window_start=60, end_datetime=START + timedelta(hours=2)
    )
    assert "Tuesday, March 3, 2026, between 9 a.m. and noon EST" in text_of(page(task))
    window = status_json(task).json()["window"]
    assert window["start"] == "2026-03-03T09:00:00-05:00"
    assert window["end"] == "2026-03-03T12:00:00-05:00"


def test_unscheduled_task_shows_no_time(org):
    task = make_task(org, unscheduled=True, start_datetime=None)
    response = page(task)
    assert "Booked" in text_of(response)
    assert re.search(r'<section class="card" id="when"[^>]*hidden', response.content.decode())
    assert status_json(task).json()["window"] is None


def test_en_route_with_eta_minutes_from_the_status_report(api, org):
    api.put("/api/express/tasks/upsert/job-1", {"title": "Fix the tap", "start_datetime": "2026-03-03T10:00:00"},
            format="json")  # fmt: skip
    reported = api.post("/api/express/tasks/job-1/status/new",
                        {"type": "ENROUTE", "time": "2026-03-03T10:05:00", "extra_fields": {"eta_minutes": 25}},
                        format="json")  # fmt: skip
    assert reported.status_code == 201, reported.json()
    task = Task.objects.get(external_id="job-1")
    response = page(task)
    assert current_step(response) == "On the way"
    assert "Expected around 10:30 a.m. EST" in text_of(response)
    assert status_json(task).json()["eta"]["at"] == "2026-03-03T10:30:00-05:00"
    assert api.get("/api/express/tasks/job-1").json()["eta"] == "2026-03-03T15:30:00Z"


def test_an_eta_as_a_naive_datetime_is_read_in_the_org_time_zone_and_cleared_by_the_next_status(org):
    task = make_task(org)
    task_report_status(task=task, type="ENROUTE", extra_fields={"eta": "2026-03-03 11:15"})
    assert status_json(task).json()["eta"]["text"] == "Expected around 11:15 a.m. EST"
    task_report_status(task=task, type="STARTED")
    assert status_json(task).json()["eta"] is None
    assert current_step(page(task)) == "In progress"


@pytest.mark.parametrize("extra", [{"eta": "soon"}, {"eta_minutes": -5}, {"eta_minutes": "20"}, {"eta_minutes": True}])
def test_a_bad_eta_is_refused_naming_the_field(api, org, extra):
    api.put("/api/express/tasks/upsert/job-1", {"title": "Job"}, format="json")
    response = api.post("/api/express/tasks/job-1/status/new", {"type": "ENROUTE", "extra_fields": extra},
                        format="json")  # fmt: skip
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]["extra_fields"]) == set(extra)
    assert Task.objects.get(external_id="job-1").status == StatusType.NOTSTARTED


def test_complete_task_offers_the_rating_form(org):
    task = make_task(org)
    task_report_status(task=task, type="COMPLETE", notes="All done, boiler serviced.")
    response = page(task)
    html = response.content.decode()
    assert current_step(response) == "Complete"
    assert "All done, boiler serviced." in text_of(response)
    assert re.search(r'<form id="rating-form"[^>]*novalidate>', html)  # shown, not hidden
    assert status_json(task).json()["can_rate"] is True


def test_cancelled_and_exception_are_shown_plainly_without_steps(org):
    task = make_task(org)
    task_report_status(task=task, type="EXCEPTION")
    response = page(task)
    assert "Needs attention" in text_of(response)
    assert re.search(r'<ol class="steps" id="steps"[^>]*hidden', response.content.decode())
    task_report_status(task=task, type="CANCELLED")
    response = page(task)
    assert "Cancelled" in text_of(response)
    assert "This job has been cancelled." in text_of(response)
    assert status_json(task).json()["step"] is None


@pytest.mark.parametrize("final", ["COMPLETE", "CANCELLED"])
def test_a_finished_task_page_is_gone_after_the_expiry_days(org, settings, final):
    settings.TRACKER_EXPIRY_DAYS = 14
    task = make_task(org)
    task_report_status(task=task, type=final, time=timezone.now() - timedelta(days=14, minutes=1))
    response = page(task)
    assert response.status_code == 410
    assert "expired" in text_of(response)
    assert "Boiler service" not in text_of(response)
    assert "Acme" not in text_of(response)
    assert status_json(task).status_code == 410
    task_report_status(task=task, type="NOTSTARTED")  # reopened: alive again
    assert page(task).status_code == 200


def test_a_finished_task_page_lives_until_the_expiry(org, settings):
    settings.TRACKER_EXPIRY_DAYS = 14
    task = make_task(org)
    task_report_status(task=task, type="COMPLETE", time=timezone.now() - timedelta(days=13, hours=23))
    assert page(task).status_code == 200


@pytest.mark.parametrize("token", ["A" * 22, "short", "not-a-token-" + "x" * 40, "bad%20token%21"])
def test_an_unknown_token_is_a_plain_404(org, token, django_assert_max_num_queries):
    make_task(org)
    with django_assert_max_num_queries(1):
        response = Client().get(f"/t/{token}")
    assert response.status_code == 404
    assert "Acme" not in text_of(response)
    assert "Boiler" not in text_of(response)
    assert "Content-Security-Policy" in response.headers
    assert Client().get(f"/t/{token}/status.json").status_code == 404


def test_a_deleted_task_is_a_404(org):
    task = make_task(org)
    task_delete(task=task)
    assert page(task).status_code == 404
    assert status_json(task).status_code == 404


# --- Query budget, caching -----------------------------------------------------------------------


def busy_task(org, crew_size: int, entries: int) -> Task:
    task = make_task(org)
    task_assign(task=task, crew=[crew_member(org, f"Crew{i}") for i in range(crew_size)])
    for i in range(entries):
        entry = task_report_status(task=task, type="STARTED", notes=f"Step {i}")
        Attachment.objects.create(organization=org, task=task, status=entry, file=f"attachments/x/{i}.jpg",
                                  content_type="image/jpeg", visible_to_customer=True)  # fmt: skip
    return task


@pytest.mark.parametrize(("crew_size", "entries"), [(1, 1), (6, 12)])
def test_page_and_json_take_one_query_however_busy_the_task(org, crew_size, entries, django_assert_num_queries):
    task = busy_task(org, crew_size, entries)
    with django_assert_num_queries(1):
        html = page(task)
    with django_assert_num_queries(1):
        data = status_json(task).json()
    assert len(data["crew"]) == crew_size
    assert len(data["entries"]) == entries + 1
    assert html.content.decode().count('class="entry-photo"') == entries


def test_crew_and_journal_come_in_order_and_the_journal_keeps_the_latest(org):
    """The crew by first name, the journal oldest first with each entry's files in turn, the
    newest JOURNAL_LIMIT entries only: whatever order the database hands the rows over in."""
    task = make_task(org)
    task_assign(task=task, crew=[crew_member(org, name) for name in ("Robin", "Alex", "Sam", "Alex")])
    start = timezone.now() + timedelta(minutes=1)  # after the entry the task was created with
    for i in reversed(range(tracker.JOURNAL_LIMIT + 2)):  # written newest first: the times decide
        entry = task_report_status(task=task, type="STARTED", notes=f"Step {i}", time=start + timedelta(minutes=i))
        if i in {2, 3}:
            for n in range(3):
                name = f"{i}-{n}.jpg"
                Attachment.objects.create(organization=org, task=task, status=entry, file=f"attachments/x/{name}",
                                          content_type="image/jpeg", visible_to_customer=True,
                                          filename=name)  # fmt: skip
    data = status_json(task).json()
    assert [person["first_name"] for person in data["crew"]] == ["Alex", "Alex", "Robin", "Sam"]
    assert [entry["notes"] for entry in data["entries"]] == [f"Step {i}" for i in range(2, tracker.JOURNAL_LIMIT + 2)]
    assert [file["name"] for file in data["entries"][0]["files"]] == ["2-0.jpg", "2-1.jpg", "2-2.jpg"]
    assert [file["name"] for file in data["entries"][1]["files"]] == ["3-0.jpg", "3-1.jpg", "3-2.jpg"]
    html = page(task).content.decode()
    assert html.index(f"Step {tracker.JOURNAL_LIMIT + 1}<") < html.index("Step 2<")  # the page: newest first


def test_status_json_has_a_strong_etag_and_answers_304_until_the_task_changes(org, django_assert_num_queries):
    task = make_task(org)
    first = status_json(task)
    etag = first["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)  # strong: no W/ prefix
    assert first["Cache-Control"].startswith("private, max-age=")
    with django_assert_num_queries(1):
        again = status_json(task, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag
    task_report_status(task=task, type="ENROUTE")
    changed = status_json(task, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed.json()["label"] == "On the way"


def test_status_json_lists_only_entries_after_since(org):
    task = make_task(org)
    first = status_json(task).json()["entries"]
    task_report_status(task=task, type="ENROUTE", notes="Leaving the depot")
    newer = status_json(task, data={"since": first[-1]["id"]}).json()["entries"]
    assert [entry["notes"] for entry in newer] == ["Leaving the depot"]


# --- Privacy ----------------------------------------------------------------------------------


def test_the_page_and_json_never_show_crew_contacts_hidden_notes_or_other_tasks(org, other_org):
    task = make_task(org)
    task_assign(task=task, crew=[crew_member(org, "Dana")])
    task_report_status(task=task, type="ENROUTE", notes="Internal: gate code 4411", visible_to_customer=False)
    task_report_status(task=task, type="STARTED", notes="Started on the boiler")
    Attachment.objects.create(organization=org, task=task, status=task.statuses.last(), file="attachments/x/s.jpg",
                              content_type="image/jpeg", visible_to_customer=False)  # fmt: skip
    make_task(org, title="Neighbour's roof")
    make_task(other_org, title="Globex secret job")
    for body in (page(task).content.decode(), status_json(task).content.decode()):
        assert "Dana" in body
        for secret in ("Privatesurname", "dana@crew.example", "+12125550199", "5550199", "gate code",
                       "Neighbour", "Globex", "entry-photo", "/files/"):  # fmt: skip
            assert secret not in body, secret
        assert "Started on the boiler" in body


def test_crew_photo_is_shown_beside_the_first_name(org):
    task = make_task(org)
    task_assign(task=task, crew=[crew_member(org, "Sam", photo="crew/sam.jpg")])
    assert 'src="/media/crew/sam.jpg"' in page(task).content.decode()
    assert status_json(task).json()["crew"] == [{"first_name": "Sam", "photo": "/media/crew/sam.jpg"}]


def test_customer_visible_photos_are_signed_links(org):
    task = make_task(org)
    entry = task_report_status(task=task, type="COMPLETE", notes="Finished")
    photo = Attachment.objects.create(organization=org, task=task, status=entry, file="attachments/x/done.jpg",
                                      content_type="image/jpeg", visible_to_customer=True)  # fmt: skip
    data = status_json(task).json()
    url = data["entries"][-1]["files"][0]["url"]
    assert url.startswith("https://taskhub.test/files/")
    assert str(photo.pk) not in url.rsplit("/", 1)[-1][:3]
    assert f'src="{url}"' in page(task).content.decode()


# --- Security headers --------------------------------------------------------------------------


def test_tracker_responses_carry_a_strict_csp_and_deny_framing_by_default(org):
    task = make_task(org)
    for response in (page(task), status_json(task)):
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert "'unsafe-inline'" not in policy
        assert "'unsafe-eval'" not in policy
        assert directives["img-src"].split() == ["'self'", "data:", "https://taskhub.test",
                                                 "https://tile.openstreetmap.org"]  # fmt: skip
        assert directives["frame-ancestors"] == "'none'"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Cache-Control"].startswith("private")
    # The token never reaches another site; the page keeps same-origin so its forms post a real Origin.
    assert page(task)["Referrer-Policy"] == "same-origin"
    assert status_json(task)["Referrer-Policy"] == "no-referrer"


def test_the_page_has_landmarks_a_language_labels_and_a_live_region(org):
    task = make_task(org)
    task_report_status(task=task, type="COMPLETE")
    html = page(task).content.decode()
    assert re.search(r'<html lang="en-us">', html)
    for landmark in ("<header", "<main", "<footer"):
        assert html.count(landmark) == 1, landmark
    for field_id in re.findall(r'<textarea id="([^"]+)"', html):
        assert f'<label for="{field_id}">' in html
    assert re.search(r"<fieldset[^>]*>\s*<legend>How did we do\?</legend>", html)
    assert 'aria-live="polite"' in html
    assert 'aria-current="step"' in html


def test_everything_the_task_shows_is_escaped_in_the_page(org):
    """The page's frame is filled in Python: each value must come out as the template engine would put it."""
    evil = '<script>alert("x")</script>'
    task = make_task(org, title=f"Job {evil}")
    TaskAddress.objects.filter(task=task).update(address_line_1=f"1 {evil} Street")
    task_assign(task=task, crew=[crew_member(org, f"Al{evil}")])
    entry = task_report_status(task=task, type="COMPLETE", notes=f"Done {evil}\nbye")
    Attachment.objects.create(organization=org, task=task, status=entry, file="attachments/x/1.pdf",
                              content_type="application/pdf", visible_to_customer=True,
                              filename=f"{evil}.pdf")  # fmt: skip
    task_rate(task=task, score=5, text=f"Great {evil}")
    html = page(task).content.decode()
    assert "<script>alert" not in html
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    shown = [f"Job {escaped}", f"1 {escaped} Street", f"Al{escaped}", f"Done {escaped}<br>bye", f">{escaped}.pdf</a>",
             f"Great {escaped}", '<span class="avatar avatar-initial" aria-hidden="true">A<']  # fmt: skip
    for text in shown:
        assert text in html
    assert "\x00" not in html


def test_the_page_is_rendered_once_per_language_and_shape_and_filled_for_each_task(org, settings):
    """Tasks that look alike share one rendering of the template; each page still shows its own task."""
    from tasks.tracker_views import FRAMES

    settings.DEBUG = False
    FRAMES.clear()
    first, other = make_task(org, title="First job"), make_task(org, title="Other job")
    rendered = {}
    for task in (first, other):
        response = page(task)
        rendered[task.title] = {t.name for t in response.templates}
        html = response.content.decode()
        assert f'<h1 id="task-title" class="task-title">{task.title}</h1>' in html
        assert f'data-status-url="/t/{task.url_safe_id}/status.json"' in html
    assert "tracker/page.html" in rendered["First job"]
    assert "tracker/page.html" not in rendered["Other job"]
    with translation.override("de"):
        german = page(other, HTTP_ACCEPT_LANGUAGE="de")
    assert "tracker/page.html" in {t.name for t in german.templates}
    assert 'lang="de"' in german.content.decode()


def test_the_page_has_no_inline_script_or_style(org):
    task = make_task(org)
    task_report_status(task=task, type="COMPLETE")
    html = page(task).content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html)


def test_an_organization_can_allow_framing_by_listed_origins(org):
    org.tracker_frame_ancestors = "https://portal.example.com\nhttps://*.partner.example"
    org.save()
    response = page(make_task(org))
    assert "frame-ancestors https://portal.example.com https://*.partner.example" in response["Content-Security-Policy"]
    assert "X-Frame-Options" not in response


def test_frame_ancestors_refuses_anything_but_origins(org):
    from django.core.exceptions import ValidationError

    org.tracker_frame_ancestors = "https://ok.example 'unsafe-inline'; script-src *"
    with pytest.raises(ValidationError):
        org.full_clean()


@pytest.mark.parametrize("brand", ["#1f5fbf", "#ffeb3b", "#ffffff", "#000000", "#ff7f50", "#00bcd4"])
def test_brand_colours_get_text_colours_with_aa_contrast(brand):
    css = theme_css(brand)
    values = dict(re.findall(r"--([a-z-]+):(#[0-9a-f]{6})", css))
    assert contrast(values["brand"], values["on-brand"]) >= 4.5
    assert contrast(values["accent"], "#ffffff") >= 4.5
    assert contrast(values["accent"], values["on-accent"]) >= 4.5


def test_the_theme_stylesheet_is_served_and_cacheable():
    response = Client().get("/t/theme/ffeb3b.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert "--on-brand:#111827" in response.content.decode()
    assert "immutable" in response["Cache-Control"]
    assert Client().get("/t/theme/zzzzzz.css").status_code == 404


# --- Remembered pages and documents -------------------------------------------------------------


def test_labels_are_remembered_per_language():
    """A label's translation is looked up once per language and process, and never served in another one."""
    shown = {}
    for language in ("de", "fr", "de", "en"):
        with translation.override(language):
            shown.setdefault(language, set()).add(tracker._("File"))
            assert tracker.status_label(StatusType.CONFIRMED) == str(StatusType.CONFIRMED.label)
    assert shown == {"de": {"Datei"}, "fr": {"Fichier"}, "en": {"File"}}


def test_days_and_times_are_remembered_per_language_and_never_served_in_another():
    from django.utils.formats import date_format, time_format

    moment = datetime(2026, 3, 3, 15, 5, 9)
    for language in ("de", "fr", "de", "en"):
        with translation.override(language):
            day = f"{date_format(moment, 'l')}, {date_format(moment, 'DATE_FORMAT')}"
            assert tracker.day_text(moment) == day
            assert tracker.weekday_text(moment) == date_format(moment, "D")
            assert tracker.clock_text(moment) == time_format(moment, "TIME_FORMAT")
            assert tracker.clock_text(moment + timedelta(days=3, microseconds=5)) == time_format(moment, "TIME_FORMAT")
            assert tracker.weekday_text(moment + timedelta(days=1)) == date_format(moment + timedelta(days=1), "D")
    with translation.override("de"):
        assert tracker.day_text(moment) == "Dienstag, 3. März 2026"


def test_a_second_view_reads_only_the_task_and_shows_the_same_page_and_document(org, django_assert_num_queries):
    task = busy_task(org, 2, 3)
    first_page, first_json = page(task), status_json(task).json()
    with django_assert_num_queries(1):
        again_page = page(task)
    with django_assert_num_queries(1):
        again_json = status_json(task).json()
    without_token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert without_token.sub("", again_page.content.decode()) == without_token.sub("", first_page.content.decode())
    assert again_json == first_json
    assert again_page["Cache-Control"] == first_page["Cache-Control"] == "private, max-age=10"
    assert "Content-Security-Policy" in again_page.headers


def test_a_remembered_page_carries_each_visitors_own_csrf_token_and_their_posts_go_through(org):
    task = make_task(org)
    page(task)  # remembered from here on
    (alice, alice_token), (bob, bob_token) = csrf_client(task), csrf_client(task)
    assert "\x00" not in alice_token
    for client, token, words in ((alice, alice_token, "From Alice"), (bob, bob_token, "From Bob")):
        response = client.post(f"/t/{task.url_safe_id}", {"csrfmiddlewaretoken": token, "form": "message",
                                                          "message": words})  # fmt: skip
        assert response.status_code == 303
    notes = set(task.statuses.filter(kind=TaskStatus.Kind.CUSTOMER_MESSAGE).values_list("notes", flat=True))
    assert notes == {"From Alice", "From Bob"}


def test_a_change_the_customer_can_see_shows_at_once(org):
    task = make_task(org)
    assert current_step(page(task)) == "Scheduled"
    assert status_json(task).json()["label"] == "Scheduled"
    task_report_status(task=task, type="ENROUTE")
    assert current_step(page(task)) == "On the way"
    assert status_json(task).json()["label"] == "On the way"
    task_assign(task=task, crew=[crew_member(org, "Robin")])
    assert "Robin" in text_of(page(task))
    assert [person["first_name"] for person in status_json(task).json()["crew"]] == ["Robin"]
    org.name = "Acme Renamed"
    org.save()
    assert "Acme Renamed" in text_of(page(task))


def test_a_deploy_that_moves_the_static_files_builds_new_pages(org, settings):
    from tasks import tracker

    task = make_task(org)
    assert "/static/tracker/tracker.css" in page(task).content.decode()
    settings.STATIC_URL = "/static-next/"
    tracker.static_files.cache_clear()
    try:
        assert "/static-next/tracker/tracker.css" in page(task).content.decode()
    finally:
        settings.STATIC_URL = "/static/"
        tracker.static_files.cache_clear()


def renamed_behind_the_version(person: Person, first_name: str) -> None:
    """A crew member's new name, which no task's version covers: it shows only on a page built anew."""
    Person.objects.filter(pk=person.pk).update(first_name=first_name)


@pytest.mark.requires_redis
def test_a_version_is_shared_with_other_processes_once_it_is_viewed_twice(org):
    """The first view keeps its page in this process and leaves a note in Redis; the next view
    elsewhere builds and shares it; a third process takes the shared copy."""
    from django.core.cache import caches

    task = make_task(org)
    robin = crew_member(org, "Robin")
    task_assign(task=task, crew=[robin])
    here = caches["tracker-local"]
    key = cache.make_key(tracker.view_key(tracker.tracker_task(task.url_safe_id), "page"))
    shared = cache._cache.get_client(write=True)
    assert "Robin" in text_of(page(task))
    assert shared.get(key) == NOTE  # seen once: nothing shared yet
    here.clear()  # the next view lands in another process
    renamed_behind_the_version(robin, "Rowan")
    assert "Rowan" in text_of(page(task))  # built again there, and shared
    assert shared.get(key) not in {None, NOTE}
    here.clear()  # and a third process
    renamed_behind_the_version(robin, "Sasha")
    assert "Rowan" in text_of(page(task))  # the shared copy


def test_this_process_keeps_its_own_copy_and_no_copy_outlives_the_time_limit(org, settings, django_assert_num_queries):
    task = make_task(org)
    robin = crew_member(org, "Robin")
    task_assign(task=task, crew=[robin])
    with time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False) as traveller:
        first = page(task).content.decode()
        renamed_behind_the_version(robin, "Rowan")
        settings.CACHES = {**settings.CACHES, "default": {"BACKEND": "taskhub.cache.RedisCache",
                                                          "LOCATION": "redis://127.0.0.1:1/0"}}  # fmt: skip
        with django_assert_num_queries(1):  # the shared cache is out of reach: this process's copy
            again = page(task).content.decode()
        assert again.split("csrfmiddlewaretoken")[0] == first.split("csrfmiddlewaretoken")[0]
        assert "Robin" in again
        traveller.shift(settings.TRACKER_CACHE_SECONDS + 1)
        rebuilt = page(task).content.decode()  # built again: the copy lived no longer than the limit
        assert "Rowan" in rebuilt
        assert "Robin" not in rebuilt


def test_a_flash_after_posting_is_never_remembered_for_the_next_visitor(org):
    task = make_task(org)
    assert "Thank you. Your message has been sent." in text_of(page(task, data={"sent": "message"}))
    assert "Thank you. Your message has been sent." not in text_of(page(task))


def test_with_the_cache_off_every_view_builds_the_page(org, settings):
    settings.TRACKER_CACHE_SECONDS = 0
    task = make_task(org)
    robin = crew_member(org, "Robin")
    task_assign(task=task, crew=[robin])
    assert "Robin" in text_of(page(task))
    assert status_json(task).json()["crew"][0]["first_name"] == "Robin"
    renamed_behind_the_version(robin, "Rowan")
    assert "Rowan" in text_of(page(task))
    assert status_json(task).json()["crew"][0]["first_name"] == "Rowan"


def test_an_unreachable_cache_costs_speed_not_the_page(org, settings, django_assert_num_queries):
    settings.CACHES = {**settings.CACHES, "default": {"BACKEND": "taskhub.cache.RedisCache",
                                                      "LOCATION": "redis://127.0.0.1:1/0"}}  # fmt: skip
    task = make_task(org)
    with django_assert_num_queries(1):
        response = page(task)
    assert response.status_code == 200
    assert current_step(response) == "Scheduled"
    assert status_json(task).json()["label"] == "Scheduled"


# --- Customer actions ---------------------------------------------------------------------------


def csrf_client(task: Task) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    html = page(task, client).content.decode()
    return client, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_posting_without_the_csrf_token_is_refused(org):
    task = make_task(org)
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/t/{task.url_safe_id}", {"form": "message", "message": "Hello"})
    assert response.status_code == 403
    assert not task.statuses.filter(kind=TaskStatus.Kind.CUSTOMER_MESSAGE).exists()


def test_a_message_becomes_a_journal_entry_and_a_webhook_event(org):
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    task = make_task(org)
    client, token = csrf_client(task)
    response = client.post(f"/t/{task.url_safe_id}", {"csrfmiddlewaretoken": token, "form": "message",
                                                       "message": "  Please ring the back door.  "})  # fmt: skip
    assert response.status_code == 303
    assert response["Location"] == f"/t/{task.url_safe_id}?sent=message#message"
    entry = task.statuses.get(kind=TaskStatus.Kind.CUSTOMER_MESSAGE)
    assert (entry.notes, entry.source) == ("Please ring the back door.", TaskStatus.Source.TRACKER)
    event = Event.objects.get(type="task.customer_message")
    assert event.payload["data"]["message"]["text"] == "Please ring the back door."
    shown = client.get(response["Location"])
    assert "Your message has been sent" in text_of(shown)
    assert "Please ring the back door." in text_of(shown)


@pytest.mark.parametrize(("message", "error"), [("   ", "Write a message"), ("x" * 2001, "2000 characters or fewer")])
def test_a_bad_message_gets_an_inline_error_tied_to_the_field(org, message, error):
    task = make_task(org)
    client, token = csrf_client(task)
    response = client.post(f"/t/{task.url_safe_id}", {"csrfmiddlewaretoken": token, "form": "message",
                                                       "message": message})  # fmt: skip
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(rf'<p class="field-error" id="message-error">[^<]*{error}', html)
    assert re.search(r'<textarea id="message-text"[^>]*aria-describedby="message-hint message-error"[^>]*'
                     r'aria-invalid="true"', html)  # fmt: skip
    assert not task.statuses.filter(kind=TaskStatus.Kind.CUSTOMER_MESSAGE).exists()


def post_message(client: Client, task: Task, token: str, message: str):
    return client.post(f"/t/{task.url_safe_id}", {"csrfmiddlewaretoken": token, "form": "message", "message": message})


def test_messages_are_rate_limited_per_link(org, settings):
    settings.TRACKER_POST_LIMIT_PER_TOKEN = 5
    task = make_task(org)
    client, token = csrf_client(task)
    codes = [post_message(client, task, token, f"Message {i}").status_code for i in range(6)]
    assert codes == [303] * 5 + [429]
    assert task.statuses.filter(kind=TaskStatus.Kind.CUSTOMER_MESSAGE).count() == 5
    assert "Please try again in" in text_of(post_message(client, task, token, "One more"))
    other = make_task(org, title="Another job")
    other_client, other_token = csrf_client(other)
    response = other_client.post(f"/t/{other.url_safe_id}", {"csrfmiddlewaretoken": other_token, "form": "message",
                                                              "message": "Hi"})  # fmt: skip
    assert response.status_code == 303  # the limit is per link (and a looser one per address)


def test_posts_are_rate_limited_per_address_across_links(org, settings):
    settings.TRACKER_POST_LIMIT_PER_IP = 3
    codes = []
    for i in range(4):
        task = make_task(org, title=f"Job {i}")
        client, token = csrf_client(task)
        codes.append(client.post(f"/t/{task.url_safe_id}", {"csrfmiddlewaretoken": token, "form": "message",
                                                            "message": "Hi"}).status_code)  # fmt: skip
    assert codes == [303, 303, 303, 429]


def rate(client: Client, task: Task, token: str, **fields):
    return client.post(f"/t/{task.url_safe_id}", {"csrfmiddlewaretoken": token, "form": "rating", **fields})


def test_rating_only_after_complete_once_and_visible_in_the_api(api, org):
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    api.put("/api/express/tasks/upsert/job-9", {"title": "Gutter cleaning"}, format="json")
    task = Task.objects.get(external_id="job-9")
    client, token = csrf_client(task)
    early = rate(client, task, token, score="5")
    assert early.status_code == 409
    assert "after it is complete" in text_of(early)
    task_report_status(task=task, type="COMPLETE")
    response = rate(client, task, token, score="4", text="Quick and tidy.")
    assert response.status_code == 303
    again = rate(client, task, token, score="1")
    assert again.status_code == 409
    assert Rating.objects.get(task=task).score == 4
    rating = api.get("/api/express/tasks/job-9").json()["rating"]
    assert (rating["score"], rating["text"]) == (4, "Quick and tidy.")
    assert Event.objects.filter(type="task.rated").count() == 1
    shown = page(task)
    assert "You rated this job 4 out of 5." in text_of(shown)
    assert "Quick and tidy." in text_of(shown)
    assert re.search(r'<form id="rating-form"[^>]*hidden', shown.content.decode())
    assert status_json(task).json()["rating"]["score"] == 4


@pytest.mark.parametrize("score", ["", "0", "6", "five"])
def test_a_bad_score_gets_an_inline_error(org, score):
    task = make_task(org)
    task_report_status(task=task, type="COMPLETE")
    client, token = csrf_client(task)
    response = rate(client, task, token, score=score)
    assert response.status_code == 400
    assert 'id="score-error"' in response.content.decode()
    assert not Rating.objects.filter(task=task).exists()


def test_the_api_lists_ratings_in_constant_queries(api, org, django_assert_max_num_queries):
    for i in range(3):
        task = make_task(org, external_id=f"job-{i}")
        task_report_status(task=task, type="COMPLETE")
        task_rate(task=task, score=5)
    with django_assert_max_num_queries(8):
        results = api.get("/api/express/tasks").json()["results"]
    assert [task["rating"]["score"] for task in results] == [5, 5, 5]


# --- Dispatcher side ---------------------------------------------------------------------------


def test_rotating_the_token_in_the_admin_kills_the_old_link(org, dispatcher_client):
    task = make_task(org)
    old = task.url_safe_id
    response = dispatcher_client.post("/admin/tasks/task/", {"action": "rotate_tracker_token",
                                                             "_selected_action": [task.pk]})  # fmt: skip
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.url_safe_id != old
    assert len(task.url_safe_id) == 22
    assert Client().get(f"/t/{old}").status_code == 404
    assert page(task).status_code == 200


def test_the_admin_shows_the_rating(org, dispatcher_client):
    task = make_task(org)
    task_report_status(task=task, type="COMPLETE")
    task_rate(task=task, score=3, text="Late but good")
    html = dispatcher_client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()
    assert "3/5 on" in html
    assert "Late but good" in html


def test_the_empty_forms_are_rendered_once_and_each_page_posts_them_to_its_own_link(org):
    tracker_views.FRAMES.clear()
    first, other, done = make_task(org), make_task(org), make_task(org)
    task_report_status(task=done, type="COMPLETE", notes="All done.")

    rendered = {}
    for task in (first, other, done):
        response = page(task)
        rendered[task.pk] = {t.name for t in response.templates} & {"tracker/rating_form.html",
                                                                    "tracker/message_form.html"}  # fmt: skip
        html = response.content.decode()
        assert html.count(f'action="/t/{task.url_safe_id}"') == 2
        assert bool(re.search(r'<form id="rating-form"[^>]*novalidate>', html)) is (task is done)
        assert "\x00" not in html
    assert rendered[first.pk] == {"tracker/rating_form.html", "tracker/message_form.html"}
    assert rendered[other.pk] == set()  # the same two forms, taken as they were
    assert rendered[done.pk] == {"tracker/rating_form.html"}  # the rating form shown: its own markup


def test_the_page_links_are_the_reversed_routes_under_any_script_prefix():
    from django.urls import reverse, set_script_prefix

    try:
        for prefix in ("/", "/taskhub/"):
            set_script_prefix(prefix)
            for token in ("abcDEF0123456789_-xy", "Z" * 22):
                assert tracker_views.link("tracker", token) == reverse("tracker", args=[token])
                assert tracker_views.link("tracker-status", token) == reverse("tracker-status", args=[token])
            theme = tracker_views.theme_link("1f5fbf", prefix)
            assert theme == reverse("tracker-theme", args=["1f5fbf"])
        assert tracker_views.link("tracker", "x" * 16).startswith("/taskhub/t/")
    finally:
        set_script_prefix("/")
