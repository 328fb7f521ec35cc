"""The tracker in a real browser: headless Chromium follows a task created, moved and rated through the API.

Chromium is Debian's package (installed here when missing); Playwright drives that binary and never
downloads one of its own. The app runs in pytest-django's live server, map tiles come from a local
HTTP server, so the page makes no request off this machine.
"""

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from taskhub.models import AccessToken

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip
PHONE = {"width": 390, "height": 844}


def chromium_binary() -> str:
    """Debian's chromium, installed with apt when it is missing (the test machines run as root)."""
    found = shutil.which("chromium")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=1200)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("Debian's chromium is not installed and could not be installed (apt-get install chromium).")
    return found


@pytest.fixture
def browser(integrator):
    """Started after the database work of the other fixtures, stopped before the database is flushed:
    Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls beside one."""
    executable = chromium_binary()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def tile_server(httpserver):
    """A map tile server on loopback: one soft-green 256 px tile for every address."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (226, 236, 228)).save(buffer, format="PNG")
    httpserver.expect_request(re.compile(r"^/tiles/.*")).respond_with_data(buffer.getvalue(), content_type="image/png")
    return httpserver


@pytest.fixture
def site(live_server, settings, tile_server):
    """The live server set up as production, but on plain http and with a fast poll."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.CSRF_COOKIE_SECURE = False
    settings.SESSION_COOKIE_SECURE = False
    settings.TRACKER_POLL_SECONDS = 1
    settings.TRACKER_TILE_URL = tile_server.url_for("/tiles/") + "{z}/{x}/{y}.png"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # fmt: skip
    return live_server


@pytest.fixture
def integrator(site, org) -> httpx.Client:
    """The integrator's HTTP client, talking to the live server like any other."""
    token = AccessToken.issue(org, ttl=3600)[1]
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


def report(integrator: httpx.Client, external_id: str, **payload) -> None:
    response = integrator.post(f"/api/express/tasks/{external_id}/status/new", json=payload)
    assert response.status_code == 201, response.text


def test_a_customer_follows_and_rates_a_job_without_reloading(browser, integrator, tmp_path):
    created = integrator.put("/api/express/tasks/upsert/e2e-1", json={
        "title": "Boiler service",
        "start_datetime": "2030-03-05T10:00:00",
        "end_datetime": "2030-03-05T12:00:00",
        "enable_time_window_display": True,
        "time_window_start": 60,
        "customer_first_name": "Robin",
        "customer_address_line_1": "12 Elm Street",
        "customer_city": "Springfield",
        "customer_zipcode": "01101",
        "customer_exact_location": {"lat": 42.1015, "lng": -72.5898},
        "entities": [{"external_id": "crew-1", "first_name": "Dana", "last_name": "Okafor",
                      "email": "dana@crew.example", "mobile_number": "+12125550199"}],
    })  # fmt: skip
    assert created.status_code == 201, created.text
    tracker_url = created.json()["tracker_url"]

    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page: Page = context.new_page()
    csp_violations: list[str] = []
    page.on("console", lambda message: csp_violations.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    page.goto(tracker_url)

    # Given the scheduled job, the customer reads its status, window and crew.
    expect(page.locator("#status-label")).to_have_text("Scheduled")
    expect(page.locator("#when-text")).to_contain_text("between 9 a.m. and noon EST")
    expect(page.locator("#crew")).to_have_text("D Dana")
    expect(page.locator("#map .leaflet-tile-loaded").first).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    # When the crew sets off, the page says so by itself, with the ETA.
    report(integrator, "e2e-1", type="ENROUTE", notes="Leaving the depot now.", extra_fields={"eta_minutes": 20})
    expect(page.locator("#status-label")).to_have_text("On the way")
    expect(page.locator("#eta")).to_contain_text("Expected around")
    expect(page.locator("#journal .entry").first).to_contain_text("Leaving the depot now.")
    expect(page.locator('#steps [aria-current="step"]')).to_have_text("On the way")
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=tmp_path / "tracker-enroute.png", full_page=True)

    # When the job is done, the rating form appears, and the customer rates it.
    report(integrator, "e2e-1", type="COMPLETE", notes="Boiler serviced and tested.")
    expect(page.locator("#status-label")).to_have_text("Complete")
    expect(page.locator("#rating-form")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True
    page.locator('label[for="score-5"]').click()
    page.locator("#rating-text").fill("On time and very tidy.")
    page.locator("#rating").screenshot(path=tmp_path / "tracker-rating-form.png")
    page.get_by_role("button", name="Send rating").click()

    # Then the page thanks them, and the integrator reads the rating back.
    expect(page.locator("#rating .flash")).to_have_text("Thank you for your rating!")
    expect(page.locator("#rating-done")).to_contain_text("You rated this job 5 out of 5.")
    rating = integrator.get("/api/express/tasks/e2e-1").json()["rating"]
    assert (rating["score"], rating["text"]) == (5, "On time and very tidy.")

    html = page.content()
    assert "dana@crew.example" not in html
    assert "5550199" not in html
    assert "Okafor" not in html
    assert csp_violations == []

    page.screenshot(path=tmp_path / "tracker.png", full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("tracker.png", "tracker-enroute.png", "tracker-rating-form.png"):
        shutil.copy(tmp_path / name, ARTIFACTS / name)
    context.close()
