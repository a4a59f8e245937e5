"""The real Cakemail API's v2 routes, as the sandbox implements them (docs/cakemail-api.md, "The v2 API").

Requests are validated against the real API's OpenAPI document (schemas.py); errors come in its `{"detail": [...]}`
shape. Checks run in the order a FastAPI app with a bearer dependency runs them: bearer token (401), query and path
parameters (422), the account asked for (403), the body (413, 422), then business rules (400).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cakemail_sandbox.activity import BadFilter, LogEntry, parse_filter, parse_sort
from cakemail_sandbox.oauth import Grant
from cakemail_sandbox.responses import (
    bad_request,
    detail_response,
    discard_body,
    forbidden,
    read_body,
    unauthorized,
    unprocessable,
)
from cakemail_sandbox.state import SandboxState
from cakemail_sandbox.store import V2EmailRecord
from cakemail_sandbox.validation import PayloadTooLarge, Rejected
from gateway_common.correlation import HTTP_HEADER as REQUEST_ID_HEADER

log = structlog.get_logger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
DEFAULT_LOG_WINDOW_SECONDS = 7 * 24 * 3600
OFF_LOOP_BYTES = 256 * 1024
SENDER_SORT_TERMS = frozenset({"name", "email", "confirmed"})


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _json_body(raw: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """The parsed body, or FastAPI's json_invalid error."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse_constant), []
    except UnicodeDecodeError:
        return None, [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]
    except json.JSONDecodeError as exc:
        return None, [{"type": "json_invalid", "loc": ["body", exc.pos], "msg": "JSON decode error"}]
    except ValueError:
        return None, [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]


def _too_large(exc: Rejected) -> JSONResponse:
    if isinstance(exc, PayloadTooLarge):
        return detail_response(413, [{"msg": exc.message, "type": "payload_too_large"}])
    return bad_request(exc.message, ["body"])


def _attachment_sizes(attachment: Any) -> tuple[int, ...]:
    items = [] if attachment is None else attachment if isinstance(attachment, list) else [attachment]
    # The schema's pattern already proved the content is padded base64.
    return tuple(len(base64.b64decode(item["content"])) for item in items)


def _content_rule(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The API needs something to send: html, text or a template (the schema alone does not say so)."""
    if any(content.get(key) for key in ("html", "text", "template")):
        return []
    msg = "Value error, one of html, text or template is required"
    return [{"type": "value_error", "loc": ["body", "content"], "msg": msg}]


def api_v2_router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    settings = state.settings
    contract = state.contract
    rejected_recipients = {address.lower() for address in settings.rejected_recipients}

    def authorize(request: Request) -> Grant | JSONResponse:
        token = _bearer_token(request)
        grant = state.oauth.resolve(token) if token else None
        if grant is not None:
            return grant
        log.info("v2.unauthorized", request_id=request.headers.get(REQUEST_ID_HEADER), token_sent=token is not None)
        return unauthorized("Not authenticated" if token is None else "Invalid or expired token")

    def account_of(grant: Grant, asked: int | None) -> int | JSONResponse:
        if asked is None:
            return grant.default_account_id
        if asked in grant.account_ids:
            return asked
        return forbidden(f"Account {asked} is not accessible with this token")

    def query(request: Request, path: str, method: str) -> dict[str, Any] | JSONResponse:
        coerced = contract.parameters(path, method, "query", request.query_params)
        return unprocessable(coerced.errors) if coerced.errors else coerced.values

    # ---- tokens ----

    @router.post("/token")
    async def create_token(request: Request) -> JSONResponse:
        try:
            raw = await read_body(request, settings.max_request_bytes)
        except Rejected as exc:
            return _too_large(exc)
        content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        fields = dict(parse_qsl(raw.decode("utf-8", "replace"))) if content_type == FORM_TYPE else {}
        coerced = contract.coerce_form("Body_createToken", fields)
        errors = coerced.errors + contract.validate_body("Body_createToken", coerced.values)
        if errors:
            return unprocessable(errors)
        form = coerced.values
        if form.get("grant_type", "password") == "refresh_token":
            if not form.get("refresh_token"):
                return unprocessable([{"type": "missing", "loc": ["body", "refresh_token"], "msg": "Field required"}])
            pair = state.oauth.refresh(form["refresh_token"])
            if pair is None:
                log.info("token.refresh_refused")
                return unauthorized("Invalid or expired refresh token")
            log.info("token.refreshed", account_id=pair.grant.default_account_id)
            return JSONResponse(pair.to_json())
        missing = [
            {"type": "missing", "loc": ["body", name], "msg": "Field required"}
            for name in ("username", "password")
            if not form.get(name)
        ]
        if missing:
            return unprocessable(missing)
        account = state.oauth.check_password(form["username"], form["password"])
        if account is None:
            log.info("token.refused")
            return unauthorized("Incorrect username or password")
        chosen = form.get("account_id", account.account_ids[0])
        if chosen not in account.account_ids:
            return forbidden(f"Account {chosen} is not accessible to this user")
        grant = Grant(account=account, default_account_id=chosen)
        if account.mfa:
            challenge = state.oauth.challenge(grant, form.get("expiration_seconds"))
            log.info("token.mfa_challenge", account_id=chosen)
            return JSONResponse({"challenge": challenge}, status_code=settings.mfa_challenge_status)
        pair = state.oauth.issue(grant, form.get("expiration_seconds"))
        log.info("token.issued", account_id=chosen)
        return JSONResponse(pair.to_json())

    @router.post("/token/challenge")
    async def complete_challenge(request: Request) -> JSONResponse:
        try:
            raw = await read_body(request, settings.max_request_bytes)
        except Rejected as exc:
            return _too_large(exc)
        body, errors = _json_body(raw)
        errors = errors or contract.validate_body("ChallengeResponseRequest", body)
        if errors:
            return unprocessable(errors)
        pair = state.oauth.complete_challenge(body["challenge"], body["code"])
        if pair is None:
            log.info("token.challenge_refused")
            return unauthorized("Invalid or expired challenge, or wrong code")
        log.info("token.issued", account_id=pair.grant.default_account_id, mfa=True)
        return JSONResponse(pair.to_json())

    # ---- senders ----

    @router.get("/brands/default/senders")
    async def list_senders(request: Request) -> JSONResponse:
        grant = authorize(request)
        if isinstance(grant, JSONResponse):
            return grant
        params = query(request, "/brands/default/senders", "get")
        if isinstance(params, JSONResponse):
            return params
        account_id = account_of(grant, params.get("account_id"))
        if isinstance(account_id, JSONResponse):
            return account_id
        senders = state.senders.of_account(account_id)
        sort = params.get("sort")
        if sort is not None:
            term = sort.lstrip("+-")
            if term not in SENDER_SORT_TERMS:
                return bad_request(f"Invalid sort term {term!r} (name, email, confirmed)", ["query", "sort"])
            senders.sort(key=lambda sender: getattr(sender, term), reverse=sort.startswith("-"))
        page, per_page = params["page"], params["per_page"]
        pagination: dict[str, Any] = {"page": page, "per_page": per_page}
        if params["with_count"]:
            pagination["count"] = len(senders)
        shown = senders[(page - 1) * per_page : page * per_page]
        return JSONResponse({"pagination": pagination, "data": [sender.to_json() for sender in shown]})

    # ---- emails ----

    @router.post("/v2/emails")
    async def submit_email(request: Request) -> Response:
        request_id = request.headers.get(REQUEST_ID_HEADER)
        grant = authorize(request)
        if isinstance(grant, JSONResponse):
            await discard_body(request)
            return grant
        params = query(request, "/v2/emails", "post")
        account_id = params if isinstance(params, JSONResponse) else account_of(grant, params.get("account_id"))
        if isinstance(account_id, JSONResponse):
            await discard_body(request)
            return account_id
        try:
            raw = await read_body(request, settings.max_request_bytes)
        except Rejected as exc:
            return _too_large(exc)
        body, errors = _json_body(raw)
        if not errors:
            # Matching megabytes of base64 against the schema's pattern takes a while: off the event loop then.
            large = len(raw) > OFF_LOOP_BYTES
            # Otherwise on the loop, with what it remembers of the message's other recipients (memo).
            if large:
                errors = await asyncio.to_thread(contract.validate_body, "SubmitEmail", body)
            else:
                errors = contract.validate_body("SubmitEmail", body, memo=True)
        if not errors and "email" not in body:
            errors = [{"type": "missing", "loc": ["body", "email"], "msg": "Field required"}]
        errors = errors or _content_rule(body["content"])
        if errors:
            log.info("v2_email.invalid", request_id=request_id, locs=[error["loc"] for error in errors])
            return unprocessable(errors)
        sender = state.senders.find(account_id, body["sender"]["id"])
        if sender is None or not sender.confirmed:
            log.info("v2_email.sender_refused", request_id=request_id, account_id=account_id, known=sender is not None)
            msg = "Sender not found" if sender is None else "Sender is not confirmed"
            return bad_request(msg, ["body", "sender", "id"])
        now = state.wall_clock()
        recipient: str = body["email"]
        status = "rejected" if recipient.lower() in rejected_recipients else "queued"
        record = V2EmailRecord(
            id=str(uuid.uuid4()),
            account_id=account_id,
            email=recipient,
            status=status,
            received_at=datetime.fromtimestamp(now, UTC).isoformat(),
            submitted_time=now,
            request_id=request_id,
            payload=body,
            sender_email=sender.email,
            sender_name=body["sender"].get("name") or sender.name,
            attachment_sizes=_attachment_sizes(body.get("attachment")),
        )
        state.inbox.add(record)
        state.stats.emails_recorded += 1
        state.metrics.emails.labels("v2", status).inc()
        for log_type in ("submitted", status):
            state.activity.add(
                LogEntry(
                    type=log_type,
                    email_id=record.id,
                    account_id=account_id,
                    time=now,
                    submitted_time=now,
                    email=recipient,
                    subject=body["content"]["subject"],
                    tags=tuple(body.get("tags") or ()),
                    sender_name=record.sender_name,
                    sender_email=sender.email,
                    metadata={"reason": "recipient rejected by the sandbox"} if log_type == "rejected" else {},
                )
            )
        log.info(
            "v2_email.recorded",
            request_id=request_id,
            email_id=record.id,
            account_id=account_id,
            status=status,
            attachments=len(record.attachment_sizes),
        )
        answer = {"email": recipient, "object": "email", "submitted": True, "data": {"id": record.id, "status": status}}
        return JSONResponse(answer, status_code=201)

    @router.get("/v2/emails/{email_id}")
    async def show_email(email_id: str, request: Request) -> JSONResponse:
        grant = authorize(request)
        if isinstance(grant, JSONResponse):
            return grant
        path = contract.parameters("/v2/emails/{email_id}", "get", "path", {"email_id": email_id})
        params = contract.parameters("/v2/emails/{email_id}", "get", "query", request.query_params)
        if path.errors or params.errors:
            return unprocessable(path.errors + params.errors)
        account_id = account_of(grant, params.values.get("account_id"))
        if isinstance(account_id, JSONResponse):
            return account_id
        record = state.inbox.v2_email(email_id.lower())
        if record is None or record.account_id != account_id:
            return detail_response(404, [{"msg": "Email not found", "type": "not_found"}])
        return JSONResponse(record.to_api_json())

    @router.get("/v2/logs/emails")
    async def email_logs(request: Request) -> JSONResponse:
        grant = authorize(request)
        if isinstance(grant, JSONResponse):
            return grant
        params = query(request, "/v2/logs/emails", "get")
        if isinstance(params, JSONResponse):
            return params
        account_id = account_of(grant, params.get("account_id"))
        if isinstance(account_id, JSONResponse):
            return account_id
        sort = parse_sort(params["sort"])
        if sort is None:
            return bad_request("Invalid sort term (id, time, submitted_time, type, provider)", ["query", "sort"])
        filters: dict[str, Any] = {}
        for name in ("tags", "providers"):
            if params.get(name) is not None:
                try:
                    filters[name] = parse_filter(params[name])
                except BadFilter as exc:
                    return bad_request(f"Invalid {name} filter: {exc}", ["query", name])
        now = int(state.wall_clock())
        start = params.get("start_time", now - DEFAULT_LOG_WINDOW_SECONDS)
        end = params.get("end_time", now)
        found = state.activity.query(
            account_id,
            start_time=start,
            end_time=end,
            log_type=params["log_type"],
            email_id=params["email_id"].lower() if params.get("email_id") else None,
            sort=sort,
            **filters,
        )
        page, per_page, iso = params["page"], params["per_page"], params["iso_time"]
        shown = found[(page - 1) * per_page : page * per_page]
        parameters: dict[str, Any] = {
            "start_time": _time(start, iso),
            "end_time": _time(end, iso),
            "iso_time": iso,
            **filters,
        }
        return JSONResponse(
            {
                "pagination": {"page": page, "per_page": per_page, "has_more": len(found) > page * per_page},
                "parameters": parameters,
                "data": [entry.to_json(iso_time=iso) for entry in shown],
            }
        )

    return router


def _time(timestamp: int, iso: bool) -> int | str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if iso else timestamp
