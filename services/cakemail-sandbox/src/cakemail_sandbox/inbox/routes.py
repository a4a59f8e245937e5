"""The web inbox: server-rendered pages (Jinja2, autoescaped), a live feed (server-sent events), downloads.

Message content is untrusted. The inbox pages escape all of it and forbid inline scripts by CSP (scripts only from
/inbox/static), so even a slip in escaping cannot run it; an HTML body is served only as a document of its own, under
a CSP without scripts or remote requests, in an iframe sandboxed without scripts or same-origin.

Clearing the inbox and switching faults call the existing JSON API (DELETE /sandbox/emails, PUT /sandbox/faults)
from the page: no form-POST route is added, so no other web page can trigger them with a plain cross-site form.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.staticfiles import StaticFiles

from cakemail_sandbox.faults import RouteName
from cakemail_sandbox.inbox.feed import InboxFeed, Overflow
from cakemail_sandbox.inbox.views import (
    MessageView,
    Query,
    body_csp,
    content_disposition,
    message_view,
    record_id,
    resolve_cid_images,
)
from cakemail_sandbox.responses import error_response
from cakemail_sandbox.state import SandboxState
from cakemail_sandbox.store import Record

HERE = Path(__file__).parent
MAX_ROWS = 200  # the newest shown; a search narrows the rest
KEEPALIVE_SECONDS = 15.0
RECONNECT_MS = 2000
# Correlation ids safe to paste into a shell command inside single quotes (they come from clients: untrusted).
SHELL_SAFE_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FAULT_ROUTES: tuple[str, ...] = get_args(RouteName)


class Pages:
    def __init__(self) -> None:
        self._env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, template: str, **context: Any) -> str:
        return self._env.get_template(template).render(**context)


def newest_first(state: SandboxState, query: Query) -> tuple[list[MessageView], int]:
    """The messages matching the query, newest first (at most MAX_ROWS), and how many the inbox holds in all."""
    records = state.inbox.all()
    shown: list[MessageView] = []
    for record in reversed(records):
        view = message_view(record)
        if query.matches(view):
            shown.append(view)
            if len(shown) == MAX_ROWS:
                break
    return shown, len(records)


def find_record(state: SandboxState, message_id: str) -> Record | None:
    found = state.inbox.v2_email(message_id)
    if found is not None:
        return found
    return next((record for record in state.inbox.all() if record_id(record) == message_id), None)


def logs_command(request_id: str | None) -> str | None:
    """The command that finds this request in make run's JSON logs, when the id is safe to paste into a shell."""
    if request_id is None or not SHELL_SAFE_ID.fullmatch(request_id):
        return None
    return f"jq -c 'select(.request_id == \"{request_id}\")' gateway.log"


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _not_found() -> Response:
    return error_response(404, "not_found", "no such message in the inbox")


def install_inbox(app: FastAPI, state: SandboxState) -> None:
    """The web inbox at / (pages under /inbox/...), on the sandbox's own app."""
    app.include_router(inbox_router(state))
    app.mount("/inbox/static", StaticFiles(directory=HERE / "static"), name="inbox-static")


def inbox_router(state: SandboxState) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    pages = Pages()
    feed = InboxFeed(state.inbox)

    def rows_html(views: list[MessageView]) -> str:
        return pages.render("_rows.html", messages=views)

    @router.get("/", response_class=HTMLResponse)
    async def inbox_page(q: str = "") -> HTMLResponse:
        views, total = newest_first(state, Query.parse(q))
        html = pages.render(
            "inbox.html",
            messages=views,
            total=total,
            q=q,
            max_rows=MAX_ROWS,
            fault_routes=FAULT_ROUTES,
            faults=state.faults.snapshot(),
        )
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @router.get("/inbox/events")
    async def inbox_events(q: str = "") -> StreamingResponse:
        query = Query.parse(q)

        def reset() -> str:
            views, total = newest_first(state, query)
            return f"retry: {RECONNECT_MS}\n" + _sse("reset", {"html": rows_html(views), "total": total})

        async def stream() -> AsyncIterator[str]:
            # Subscribing and taking the snapshot happen with no await between them: nothing falls in the gap.
            with feed.subscribe() as subscription:
                yield reset()
                while True:
                    getter = asyncio.ensure_future(subscription.next())
                    stopping = asyncio.ensure_future(state.stopping.wait())
                    try:
                        await asyncio.wait(
                            {getter, stopping}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        for waiter in (getter, stopping):
                            waiter.cancel()
                    if stopping.done() and not stopping.cancelled():
                        return
                    if not getter.done() or getter.cancelled():
                        yield ": keepalive\n\n"
                        continue
                    change = getter.result()
                    total = len(state.inbox.all())
                    if isinstance(change, Overflow):
                        yield reset()
                    elif change is None:
                        yield _sse("cleared", {"total": 0})
                    else:
                        view = message_view(change)
                        shown = rows_html([view]) if query.matches(view) else None
                        yield _sse("added", {"id": view.id, "html": shown, "total": total})

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @router.get("/inbox/messages/{message_id}", response_class=HTMLResponse, response_model=None)
    async def message_page(message_id: str, remote_images: bool = False) -> Response:
        record = find_record(state, message_id)
        if record is None:
            return _not_found()
        view = message_view(record)
        html = pages.render(
            "message.html",
            message=view,
            remote_images=remote_images,
            logs_command=logs_command(view.request_id),
        )
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @router.get("/inbox/messages/{message_id}/body", response_model=None)
    async def message_body(message_id: str, remote_images: bool = False) -> Response:
        """The HTML body as its own document: the iframe's source, never part of an inbox page."""
        record = find_record(state, message_id)
        if record is None:
            return _not_found()
        view = message_view(record)
        html = resolve_cid_images(view.html or "", view.attachments)
        headers = {
            "Content-Security-Policy": body_csp(remote_images=remote_images),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    @router.get("/inbox/messages/{message_id}/attachments/{index}", response_model=None)
    async def attachment(message_id: str, index: int, inline: bool = False) -> Response:
        record = find_record(state, message_id)
        found = message_view(record).attachment(index) if record is not None else None
        if found is None:
            return _not_found()
        shown_inline = inline and found.displayable
        # Anything else is a download, typed so a browser never renders it as a page of ours.
        media_type = found.media_type if shown_inline else "application/octet-stream"
        headers = {
            "Content-Disposition": content_disposition("inline" if shown_inline else "attachment", found.download_name),
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return Response(found.decoded(), media_type=media_type, headers=headers)

    return router
