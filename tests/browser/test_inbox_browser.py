"""The sandbox's web inbox in a real browser (headless Chromium), fed by the real stack: SMTP to the edge, gRPC to
the forwarder, HTTP to the sandbox. Whichever record flavor the running forwarder does not produce is posted to the
sandbox's API directly, so both flavors are seen rendered."""

from __future__ import annotations

import base64
import smtplib
import ssl
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from devstack.stack import Stack
from tests.browser.conftest import wait_for
from tests.conftest import SandboxView

pytestmark = pytest.mark.e2e

DEMO = ("demo@example.com", "demo-password")
PDF = b"%PDF-1.4 quarterly report\n" + bytes(range(256)) * 4
HTML = (
    '<h1 id="greeting" style="color:#17324d">Hello Bob</h1><p>Your quarterly report is attached.</p>'
    '<p id="scripted">script did not run</p>'
    "<script>document.getElementById('scripted').textContent = 'script ran'</script>"
)


def _png(width: int, height: int) -> bytes:
    """A real (red) PNG, so a browser decodes it and reports its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = _png(2, 2)


def smtp_send(stack: Stack, tls: ssl.SSLContext, message: EmailMessage) -> None:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, local_hostname="browser.test", timeout=30)
    try:
        client.starttls(context=tls)
        client.login(*DEMO)
        client.send_message(message)
    finally:
        client.quit()


def report_message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Demo Sender <demo@example.com>"
    message["To"] = "Bob <bob@example.net>"
    message["Subject"] = subject
    message["X-Campaign-ID"] = "q3-report"
    message.set_content("Hello Bob, your quarterly report is attached.\n")
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return message


def reset_message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "demo@example.com"
    message["To"] = "zoe@example.org"
    message["Subject"] = subject
    message.set_content("Click to reset your password.\n")
    return message


def post_other_flavor(sandbox_url: str, smtp_flavor: str, subject: str) -> str:
    """A record of the flavor the forwarder did not produce, posted to the sandbox's own API; returns its id."""
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        if smtp_flavor == "v2":
            key = http.post("/v1/auth/validate", json={"username": DEMO[0], "password": DEMO[1]}).json()["api_key"]
            payload: dict[str, Any] = {
                "from": {"email": "ann@example.com", "name": "Ann"},
                "to": [{"email": "carol@example.org", "name": "Carol"}],
                "subject": subject,
                "text_body": "Welcome!\n",
                "html_body": '<h1 id="greeting">Welcome Carol</h1>',
                "headers": {"X-Mailer": "direct v1 post"},
            }
            headers = {"Authorization": f"Bearer {key}", "X-Request-Id": "direct-v1"}
            response = http.post("/v1/emails", json=payload, headers=headers)
            assert response.status_code == 200, response.text
            return str(response.json()["message_id"])
        token = http.post("/token", data={"username": DEMO[0], "password": DEMO[1]}).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        senders = http.get("/brands/default/senders", params={"per_page": 100}, headers=bearer).json()["data"]
        [sender] = [s["id"] for s in senders if s["email"] == "ann@example.com"]
        body = {
            "email": "carol@example.org",
            "sender": {"id": sender, "name": "Ann"},
            "content": {
                "subject": subject,
                "html": '<h1 id="greeting">Welcome Carol</h1>',
                "text": "Welcome!\n",
                "type": "marketing",
                "encoding": "utf-8",
            },
            "tags": ["onboarding", "week-1"],
            "tracking": {"opens": True, "clicks_html": False},
            "list_id": 12,
            "additional_headers": [{"name": "X-Mailer", "value": "direct v2 post"}],
        }
        response = http.post("/v2/emails", json=body, headers={**bearer, "X-Request-Id": "direct-v2"})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["id"])


def save_screenshot(driver: WebDriver, path: Path, *, full_page: bool = False) -> None:
    """A PNG of the window; `full_page`: of the whole page (the window grown to its height, then put back)."""
    size = driver.get_window_size()
    if full_page:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(size["width"], min(max(height + 100, size["height"]), 3000))
    try:
        assert driver.save_screenshot(str(path)), path
    finally:
        if full_page:
            driver.set_window_size(size["width"], size["height"])
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, path


def subjects(driver: WebDriver) -> list[str]:
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#messages tr td.subject")]


def open_inbox(driver: WebDriver, stack: Stack, query: str = "") -> None:
    driver.get(stack.sandbox_url + "/" + (f"?q={query}" if query else ""))
    # The live feed is connected once its first (full) list has arrived.
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "on", "feed live")
    driver.execute_script("window.notReloaded = true")


def still_same_page(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return window.notReloaded === true"))


def test_sent_messages_appear_live_open_render_and_download(
    browser: WebDriver,
    stack: Stack,
    sandbox: SandboxView,
    client_tls: ssl.SSLContext,
    download_dir: Path,
    screenshot_dir: Path,
) -> None:
    run = uuid.uuid4().hex[:6]
    report, reset = f"Quarterly report {run}", f"Password reset {run}"
    open_inbox(browser, stack)
    assert subjects(browser) == []

    smtp_send(stack, client_tls, report_message(report))
    smtp_send(stack, client_tls, reset_message(reset))
    # Newest first, without a reload.
    wait_for(browser, lambda d: subjects(d) == [reset, report], "both messages listed, newest first")
    assert still_same_page(browser)

    smtp_flavor = sandbox.emails(content=False)[0]["flavor"]
    other_flavor = "v1" if smtp_flavor == "v2" else "v2"
    welcome = f"Welcome aboard {run}"
    other_id = post_other_flavor(stack.sandbox_url, smtp_flavor, welcome)
    wait_for(browser, lambda d: subjects(d) == [welcome, reset, report], "the directly posted record listed")
    assert still_same_page(browser)
    row = browser.find_element(By.ID, f"m-{other_id}")
    assert row.find_element(By.CSS_SELECTOR, ".badge[class*=flavor]").text == other_flavor
    report_row = browser.find_elements(By.CSS_SELECTOR, "#messages tr")[2]
    assert report_row.find_element(By.CSS_SELECTOR, ".badge[class*=flavor]").text == smtp_flavor
    assert report_row.find_element(By.CSS_SELECTOR, "td.attachments").text.startswith("1")
    assert report_row.find_element(By.CSS_SELECTOR, "td.to").text == "bob@example.net"
    assert report_row.find_element(By.CSS_SELECTOR, ".badge[class*=status]").text == "queued"
    assert report_row.find_element(By.CSS_SELECTOR, "td.request-id").text not in ("", "—")
    save_screenshot(browser, screenshot_dir / "sandbox-inbox.png")

    # The message: its HTML rendered in the sandboxed frame (its script did not run), its text, its attachment.
    report_row.find_element(By.LINK_TEXT, report).click()
    wait_for(browser, lambda d: d.find_element(By.ID, "subject").text == report, "the message page")
    frame = browser.find_element(By.ID, "html-body")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    try:
        wait_for(browser, lambda d: d.find_element(By.ID, "greeting").text == "Hello Bob", "the HTML body rendered")
        assert browser.find_element(By.ID, "scripted").text == "script did not run"
    finally:
        browser.switch_to.default_content()
    assert "your quarterly report is attached" in browser.find_element(By.ID, "text-body").text
    header_names = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#headers td:first-child")]
    assert "X-Campaign-ID" in header_names or smtp_flavor == "v2"  # v2 carries only what additional_headers take
    request_id = browser.find_element(By.ID, "request-id").text
    assert request_id in browser.find_element(By.ID, "logs-command").text
    save_screenshot(browser, screenshot_dir / "sandbox-message.png", full_page=True)

    link = browser.find_element(By.CSS_SELECTOR, "a.download")
    assert link.text == "report.pdf"
    link.click()
    downloaded = download_dir / "report.pdf"
    wait_for(browser, lambda _: downloaded.exists() and downloaded.read_bytes() == PDF, "report.pdf downloaded")

    # The other flavor's page renders too.
    browser.get(f"{stack.sandbox_url}/inbox/messages/{other_id}")
    assert browser.find_element(By.ID, "subject").text == welcome
    assert "X-Mailer" in browser.find_element(By.ID, "headers").text
    browser.switch_to.frame(browser.find_element(By.ID, "html-body"))
    try:
        wait_for(browser, lambda d: d.find_element(By.ID, "greeting").text == "Welcome Carol", "other flavor's HTML")
    finally:
        browser.switch_to.default_content()


def test_search_as_you_type_and_clear(browser: WebDriver, stack: Stack, sandbox: SandboxView) -> None:
    run = uuid.uuid4().hex[:6]
    v1_id = post_other_flavor(stack.sandbox_url, "v2", f"Invoice {run}")  # a v1 record, to carol@example.org
    v2_id = post_other_flavor(stack.sandbox_url, "v1", f"Welcome {run}")  # a v2 one, tagged onboarding
    open_inbox(browser, stack)
    wait_for(browser, lambda d: subjects(d) == [f"Welcome {run}", f"Invoice {run}"], "both listed")

    def search(text: str) -> None:
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(text)

    def ids(driver: WebDriver) -> list[str | None]:
        return [row.get_attribute("data-id") for row in driver.find_elements(By.CSS_SELECTOR, "#messages tr")]

    for text, expected in [
        ("tag:onboarding", [v2_id]),
        (f"subject:invoice {run}", [v1_id]),
        ("carol", [v2_id, v1_id]),
        ("from:nobody", []),
    ]:
        search(text)
        wait_for(browser, lambda d, q=text: d.find_element(By.TAG_NAME, "body").get_attribute("data-query") == q, text)
        assert ids(browser) == expected, text
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert browser.current_url.endswith("?q=from%3Anobody")

    # Enter searches at once; a message that does not match arrives counted but unlisted.
    search("tag:onboarding")
    browser.find_element(By.ID, "q").send_keys(Keys.ENTER)
    wait_for(browser, lambda d: ids(d) == [v2_id], "search by Enter")
    post_other_flavor(stack.sandbox_url, "v2", f"Unrelated {run}")
    wait_for(browser, lambda d: d.find_element(By.ID, "total").text == "3", "the count follows")
    assert ids(browser) == [v2_id] and still_same_page(browser)

    browser.find_element(By.ID, "clear-inbox").click()
    wait_for(browser, lambda d: ids(d) == [] and d.find_element(By.ID, "total").text == "0", "inbox cleared")
    assert sandbox.emails() == []


def test_a_fault_switched_on_from_the_page_refuses_the_next_send(
    browser: WebDriver, stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    sandbox.faults({})
    open_inbox(browser, stack)
    try:
        Select(browser.find_element(By.ID, "fault-route")).select_by_value("emails")
        Select(browser.find_element(By.ID, "fault-kind")).select_by_value("429")
        retry_after = browser.find_element(By.ID, "fault-retry-after")
        assert retry_after.is_displayed() and not browser.find_element(By.ID, "fault-latency").is_displayed()
        retry_after.clear()
        retry_after.send_keys("60")
        browser.find_element(By.ID, "fault-count").send_keys("1")
        browser.find_element(By.ID, "fault-apply").click()
        wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-faults") == "emails", "on")
        assert "emails" in browser.find_element(By.ID, "fault-status").text
        active = browser.find_element(By.CSS_SELECTOR, "#active-faults tr[data-route=emails]").text
        assert '"error_status":429' in active and '"retry_after":60' in active

        subject = f"Refused {uuid.uuid4().hex[:6]}"
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            smtp_send(stack, client_tls, reset_message(subject))
        assert 400 <= refused.value.smtp_code < 500, refused.value
        assert [e for e in sandbox.emails(content=False) if e["payload"].get("subject") == subject] == []

        assert _active_faults(stack) == {}  # count 1: used up by that send

        # A lasting 503, switched off again from its row; the next send goes through.
        Select(browser.find_element(By.ID, "fault-kind")).select_by_value("503")
        browser.find_element(By.ID, "fault-count").clear()
        browser.find_element(By.ID, "fault-apply").click()
        wait_for(browser, lambda _: _active_faults(stack) == {"emails": {"error_status": 503}}, "503 on")
        browser.find_element(By.CSS_SELECTOR, "#active-faults tr[data-route=emails] button").click()
        wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-faults") == "", "off")
        assert _active_faults(stack) == {}
        smtp_send(stack, client_tls, reset_message(subject))
        wait_for(browser, lambda d: subject in subjects(d), "the next send listed")
    finally:
        sandbox.faults({})


def _active_faults(stack: Stack) -> dict[str, Any]:
    return dict(httpx.get(stack.sandbox_url + "/sandbox/faults", timeout=5).json())


def test_phone_width_keyboard_and_labels(
    browser: WebDriver, stack: Stack, sandbox: SandboxView, screenshot_dir: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    post_other_flavor(stack.sandbox_url, "v2", f"Phone {run}")
    post_other_flavor(stack.sandbox_url, "v1", f"Tagged {run}")
    browser.set_window_size(390, 844)
    open_inbox(browser, stack)
    wait_for(browser, lambda d: len(subjects(d)) == 2, "listed")
    save_screenshot(browser, screenshot_dir / "sandbox-inbox-phone.png")
    # No sideways scrolling: rows become labelled cards.
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    first_cell = browser.find_element(By.CSS_SELECTOR, "#messages tr td")
    assert browser.execute_script("return getComputedStyle(arguments[0]).display", first_cell) == "block"
    # Every control has a label.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select')]"
        ".filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.id)"
    )
    assert unlabelled == []
    # Keyboard: from the search box, Tab reaches the Search button; a subject link opens with Enter.
    box = browser.find_element(By.ID, "q")
    box.click()
    box.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Search"
    link = browser.find_element(By.CSS_SELECTOR, "#messages td.subject a")
    link.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: d.find_elements(By.ID, "html-body"), "message page by keyboard")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


class _Pixels(BaseHTTPRequestHandler):
    """A remote image host on loopback that counts what it is asked for: a tracking pixel's view of the inbox."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def pixel_host() -> Iterator[tuple[str, list[str]]]:
    handler = type("Pixels", (_Pixels,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    server.shutdown()
    server.server_close()


def test_remote_images_stay_blocked_until_asked_and_cid_images_show(
    browser: WebDriver, stack: Stack, sandbox: SandboxView, pixel_host: tuple[str, list[str]]
) -> None:
    pixel_url, hits = pixel_host
    html = (
        f'<p id="top">Newsletter</p><img id="inline" src="cid:logo@example.com" alt="logo">'
        f'<img id="remote" src="{pixel_url}/open.png?u=bob" alt="remote">'
    )
    with httpx.Client(base_url=stack.sandbox_url, timeout=10) as http:
        key = http.post("/v1/auth/validate", json={"username": DEMO[0], "password": DEMO[1]}).json()["api_key"]
        payload = {
            "from": {"email": "news@example.com"},
            "to": [{"email": "bob@example.net"}],
            "subject": "Newsletter",
            "html_body": html,
            "attachments": [
                {
                    "filename": "",
                    "content": base64.b64encode(PNG).decode(),
                    "content_type": "image/png",
                    "content_id": "<logo@example.com>",
                    "disposition": "inline",
                }
            ],
        }
        response = http.post("/v1/emails", json=payload, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        message_id = response.json()["message_id"]

    def natural_width(driver: WebDriver, image: str) -> int:
        return int(driver.execute_script("return arguments[0].naturalWidth", driver.find_element(By.ID, image)))

    browser.get(f"{stack.sandbox_url}/inbox/messages/{message_id}")
    browser.switch_to.frame(browser.find_element(By.ID, "html-body"))
    try:
        wait_for(browser, lambda d: natural_width(d, "inline") == 2, "the cid: image shown")
        # The remote image was refused by the policy: broken, and never requested.
        wait_for(browser, lambda d: d.execute_script("return document.getElementById('remote').complete"), "settled")
        assert natural_width(browser, "remote") == 0
    finally:
        browser.switch_to.default_content()
    # The page's own preview of the inline image (served by the sandbox itself).
    preview = browser.find_element(By.CSS_SELECTOR, "img.preview")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", preview) == 2, "the preview")
    assert hits == []

    browser.find_element(By.ID, "load-remote").click()
    wait_for(browser, lambda d: "remote_images=1" in d.current_url, "remote images asked for")
    browser.switch_to.frame(browser.find_element(By.ID, "html-body"))
    try:
        wait_for(browser, lambda d: natural_width(d, "remote") == 2, "the remote image loaded")
    finally:
        browser.switch_to.default_content()
    assert hits == ["/open.png?u=bob"]
