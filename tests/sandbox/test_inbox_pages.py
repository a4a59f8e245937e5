"""The web inbox over real HTTP: pages of both record flavors, escaping, the body's own document and CSP, downloads,
the live feed (server-sent events), and the API routes left as they were."""

from __future__ import annotations

import asyncio
import base64
import html as html_lib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cakemail_sandbox.inbox import routes as inbox_routes
from cakemail_sandbox.inbox.feed import MAX_PENDING, OVERFLOW, Subscription
from cakemail_sandbox.store import Inbox
from tests.sandbox.conftest import (
    StartSandbox,
    email_headers,
    send_v2,
    sender_id,
    v2_token,
    valid_email,
    valid_v2_email,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PDF = b"%PDF-1.4 inbox test\n" * 10
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


async def post_v1(client: httpx.AsyncClient, api_key: str, request_id: str = "req-1", **changes: Any) -> str:
    headers = email_headers(api_key, None, request_id)
    response = await client.post("/v1/emails", json=valid_email(**changes), headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["message_id"])


async def post_v2(client: httpx.AsyncClient, **changes: Any) -> str:
    token = await v2_token(client)
    sender = await sender_id(client, token, "ann@example.com")
    response = await send_v2(client, token, valid_v2_email(sender, **changes))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="m-([^"]+)"', html)


async def test_the_list_shows_both_flavors_newest_first_with_their_columns(
    client: httpx.AsyncClient, api_key: str
) -> None:
    v1 = await post_v1(client, api_key, request_id="corr-v1", cc=[{"email": "carol@example.org"}])
    v2 = await post_v2(client, email="rejected@example.com")

    response = await client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert rows(page) == [v2, v1]
    assert '<span id="total">2</span>' in page
    assert 'badge flavor-v1">v1' in page and 'badge flavor-v2">v2' in page
    assert 'status-rejected">rejected' in page and 'status-queued">queued' in page
    assert '<span class="tag">welcome</span>' in page and '<span class="tag">msg-1</span>' in page
    assert "<code>corr-v1</code>" in page and "<code>corr-v2</code>" in page
    assert 'bob@example.net, <span class="kind">cc:</span> carol@example.org' in page
    assert f'<a href="/inbox/messages/{v1}">Hello</a>' in page
    # The attachment counts: one on the v1 record, two on the v2 one.
    assert re.findall(r'class="attachments">(\d+)<', page) == ["2", "1"]


async def test_the_page_escapes_message_content_and_allows_only_its_own_scripts(
    client: httpx.AsyncClient, api_key: str
) -> None:
    await post_v1(client, api_key, subject=HOSTILE, **{"from": {"email": "ann@example.com", "name": HOSTILE}})
    response = await client.get("/")
    page = response.text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") == 2
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # The only script is the inbox's own file.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/inbox/static/inbox.js" defer>']


async def test_search_narrows_by_recipient_sender_subject_and_tag(client: httpx.AsyncClient, api_key: str) -> None:
    v1 = await post_v1(client, api_key, subject="Password reset", to=[{"email": "zoe@example.org"}])
    v2 = await post_v2(client)
    assert rows((await client.get("/", params={"q": "zoe"})).text) == [v1]
    assert rows((await client.get("/", params={"q": "subject:password"})).text) == [v1]
    assert rows((await client.get("/", params={"q": "tag:welcome"})).text) == [v2]
    assert rows((await client.get("/", params={"q": "from:ann"})).text) == [v2, v1]
    nothing = (await client.get("/", params={"q": "<b>nobody</b>"})).text
    assert rows(nothing) == [] and 'value="&lt;b&gt;nobody&lt;/b&gt;"' in nothing
    assert '<p id="empty" class="empty">No messages match this search.' in nothing


async def test_a_v1_message_page_shows_bodies_headers_fields_attachments_raw_json_and_logs_hint(
    client: httpx.AsyncClient, api_key: str
) -> None:
    attachments = [
        {"filename": "report.pdf", "content": base64.b64encode(PDF).decode(), "content_type": "application/pdf"},
        {
            "filename": "logo.png",
            "content": base64.b64encode(PNG).decode(),
            "content_type": "image/png",
            "content_id": "logo@x",
            "disposition": "inline",
        },
    ]
    html = '<h1>Hi</h1><img src="cid:logo@x"><script>parent.x=1</script>'
    message = await post_v1(
        client,
        api_key,
        request_id="0f1e2d3c",
        html_body=html,
        headers={"X-Campaign": "c-<42>"},
        attachments=attachments,
    )
    response = await client.get(f"/inbox/messages/{message}")
    assert response.status_code == 200
    page = response.text
    assert '<h1 id="subject">Hello</h1>' in page
    # The HTML body is never inlined into the page: only an iframe sandboxed without scripts points at it.
    # (The raw JSON below shows it, escaped, as text.)
    assert "<script>parent.x" not in page and "<h1>Hi</h1>" not in page
    assert page.count("parent.x") == 1 and "&lt;script&gt;parent.x=1&lt;/script&gt;" in page
    assert '<iframe id="html-body" class="html-body" sandbox="" referrerpolicy="no-referrer"' in page
    assert f'src="/inbox/messages/{message}/body"' in page
    assert '<pre id="text-body" class="text-body">Hi Bob\n</pre>' in page
    assert "<td>X-Campaign</td><td>c-&lt;42&gt;</td>" in page
    assert "<td>envelope_from</td><td>bounces@example.com</td>" in page
    assert f'href="/inbox/messages/{message}/attachments/0" download="report.pdf"' in page
    assert f'<img class="preview" src="/inbox/messages/{message}/attachments/1?inline=1"' in page
    assert "application/pdf · 200 bytes" in page and "image/png · 48 bytes · inline · cid:logo@x" in page
    assert "jq -c &#39;select(.request_id == &#34;0f1e2d3c&#34;)&#39; gateway.log" in page
    raw = re.search(r'<pre id="raw-json" class="raw">(.*?)</pre>', page, re.S)
    assert raw is not None
    shown = json.loads(html_lib.unescape(raw.group(1)))
    report = {"filename": "report.pdf", "content_type": "application/pdf", "size": 200}
    assert shown["payload"]["attachments"][0] == report
    assert shown["request_id"] == "0f1e2d3c" and shown["flavor"] == "v1"


async def test_the_html_body_is_its_own_document_with_a_strict_policy(client: httpx.AsyncClient, api_key: str) -> None:
    png = {
        "filename": "",
        "content": base64.b64encode(PNG).decode(),
        "content_type": "image/png",
        "content_id": "logo@x",
        "disposition": "inline",
    }
    html = '<p>Hi</p><img src="cid:logo@x"><img src="https://tracker.example/p.gif"><script>alert(1)</script>'
    message = await post_v1(client, api_key, html_body=html, attachments=[png])

    body = await client.get(f"/inbox/messages/{message}/body")
    assert body.status_code == 200 and body.headers["content-type"] == "text/html; charset=utf-8"
    assert f'<img src="data:image/png;base64,{base64.b64encode(PNG).decode()}">' in body.text
    csp = body.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src data:;" in csp and csp.endswith("sandbox")
    assert "script-src" not in csp
    remote = await client.get(f"/inbox/messages/{message}/body", params={"remote_images": "1"})
    assert "img-src data: http: https:;" in remote.headers["content-security-policy"]
    page = (await client.get(f"/inbox/messages/{message}", params={"remote_images": "1"})).text
    assert f'src="/inbox/messages/{message}/body?remote_images=1"' in page and "Block remote images" in page


async def test_attachments_download_with_their_bytes_and_only_raster_images_display(
    client: httpx.AsyncClient, api_key: str
) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    attachments = [
        {"filename": "café report.pdf", "content": base64.b64encode(PDF).decode(), "content_type": "application/pdf"},
        {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "content_type": "image/png"},
        {"filename": "x.svg", "content": base64.b64encode(svg).decode(), "content_type": "image/svg+xml"},
    ]
    message = await post_v1(client, api_key, attachments=attachments)
    pdf = await client.get(f"/inbox/messages/{message}/attachments/0")
    assert pdf.status_code == 200 and pdf.content == PDF
    assert pdf.headers["content-disposition"] == (
        "attachment; filename=\"caf_ report.pdf\"; filename*=UTF-8''caf%C3%A9%20report.pdf"
    )
    assert pdf.headers["content-type"] == "application/octet-stream"
    shown = await client.get(f"/inbox/messages/{message}/attachments/1", params={"inline": "1"})
    assert shown.content == PNG and shown.headers["content-type"] == "image/png"
    assert shown.headers["content-disposition"].startswith("inline;")
    scripted = await client.get(f"/inbox/messages/{message}/attachments/2", params={"inline": "1"})
    assert scripted.content == svg and scripted.headers["content-type"] == "application/octet-stream"
    assert scripted.headers["content-disposition"].startswith("attachment;")
    assert scripted.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert (await client.get(f"/inbox/messages/{message}/attachments/3")).status_code == 404


async def test_a_v2_message_page_and_its_attachment(client: httpx.AsyncClient) -> None:
    pdf = base64.b64encode(PDF).decode()
    email_id = await post_v2(
        client,
        attachment={"filename": "invoice-7.pdf", "type": "pdf", "content": pdf},
        additional_headers=[{"name": "X-Order", "value": "<1234>"}],
    )
    page = (await client.get(f"/inbox/messages/{email_id}")).text
    assert 'badge flavor-v2">v2' in page and '<span class="tag">welcome</span>' in page
    assert "<td>X-Order</td><td>&lt;1234&gt;</td>" in page and "<code>additional_headers</code>" in page
    assert "<td>list_id</td><td>7</td>" in page and "<td>content.type</td><td>transactional</td>" in page
    assert "<td>tracking</td><td>opens off, clicks_html on, clicks_text off</td>" in page
    assert '<code id="request-id">corr-v2</code>' in page
    body = await client.get(f"/inbox/messages/{email_id}/body")
    assert body.text == "<p>Hi Bob</p>"
    download = await client.get(f"/inbox/messages/{email_id}/attachments/0")
    assert download.content == PDF and 'filename="invoice-7.pdf"' in download.headers["content-disposition"]


@pytest.mark.parametrize(
    "path", ["/inbox/messages/nope", "/inbox/messages/nope/body", "/inbox/messages/nope/attachments/0"]
)
async def test_unknown_messages_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_static_files_and_the_api_routes_are_unchanged(client: httpx.AsyncClient, api_key: str) -> None:
    assert (await client.get("/inbox/static/inbox.js")).status_code == 200
    assert (await client.get("/inbox/static/inbox.css")).status_code == 200
    await post_v1(client, api_key)
    # The inbox's pages are not API routes: they count no calls and no fault ever applies to them.
    assert (await client.put("/sandbox/faults", json={"emails": {"error_status": 503}})).status_code == 200
    before = (await client.get("/sandbox/stats")).json()
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/sandbox/stats")).json() == before
    assert list((await client.get("/sandbox/emails")).json()) == ["emails"]


# ---- the live feed ----


class EventStream:
    """A reader of text/event-stream: (event, data) pairs, comments skipped."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        async def read() -> tuple[str, dict[str, Any]]:
            event, data = "message", ""
            async for line in self._lines:
                if line == "":
                    if data:
                        return event, json.loads(data)
                    continue
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
            raise EOFError("the stream ended")

        return await asyncio.wait_for(read(), timeout)


async def test_the_feed_resets_then_sends_each_new_message_matching_the_search_and_clears(
    client: httpx.AsyncClient, api_key: str
) -> None:
    first = await post_v1(client, api_key, subject="before the stream")
    async with client.stream("GET", "/inbox/events", params={"q": "subject:live"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = EventStream(response.aiter_lines())
        event, data = await events.next()
        assert event == "reset" and data["total"] == 1 and rows(data["html"]) == []

        live = await post_v1(client, api_key, subject="live one")
        event, data = await events.next()
        assert (event, data["id"], data["total"], rows(data["html"])) == ("added", live, 2, [live])
        assert "live one" in data["html"]

        other = await post_v2(client)  # does not match the search: counted, not shown
        event, data = await events.next()
        assert (event, data["id"], data["total"], data["html"]) == ("added", other, 3, None)

        assert (await client.delete("/sandbox/emails")).status_code == 204
        assert await events.next() == ("cleared", {"total": 0})
    assert first != live


async def test_a_stalled_reader_gets_a_fresh_list_instead_of_unbounded_changes() -> None:
    inbox = Inbox()
    subscription = Subscription()
    for _ in range(MAX_PENDING + 5):
        subscription.push(None)
    assert subscription.queue.qsize() == 1 and await subscription.next() is OVERFLOW
    subscription.push(None)
    assert await subscription.next() is None
    assert inbox.all() == []


async def test_stopping_the_sandbox_ends_open_feeds_at_once(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox()
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=5) as http,
        http.stream("GET", "/inbox/events") as response,
    ):
        events = EventStream(response.aiter_lines())
        assert (await events.next())[0] == "reset"
        started = time.monotonic()
        await server.stop()
        with pytest.raises((EOFError, httpx.RemoteProtocolError, httpx.ReadError)):
            await events.next()
    # Well inside the shutdown grace period: the feed did not hold the stop up.
    assert time.monotonic() - started < 1.0


async def test_an_idle_feed_sends_keepalive_comments(
    start_sandbox: StartSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_routes, "KEEPALIVE_SECONDS", 0.05)
    server = await start_sandbox()
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=5) as http,
        http.stream("GET", "/inbox/events") as response,
    ):
        lines = response.aiter_lines()
        seen: list[str] = []
        async for line in lines:
            seen.append(line)
            if line == ": keepalive":
                break
        assert seen[0] == "retry: 2000" and seen[1] == "event: reset"
