"""The API the forwarder calls: /v1/auth/validate, /v1/emails, /v1/health (contract: docs/cakemail-api.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cakemail_sandbox.config import Account
from cakemail_sandbox.responses import discard_body, error_response, read_body, rejected_response
from cakemail_sandbox.state import SandboxState
from cakemail_sandbox.store import EmailRecord, StoredResponse
from cakemail_sandbox.validation import (
    Rejected,
    parse_json_object,
    validate_credentials,
    validate_email,
    validate_idempotency_key,
)
from gateway_common.correlation import HTTP_HEADER as REQUEST_ID_HEADER

log = structlog.get_logger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _response(stored: StoredResponse, *, replayed: bool = False) -> JSONResponse:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return JSONResponse(stored.body, status_code=stored.status, headers=headers)


def api_router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    settings = state.settings

    @router.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/v1/auth/validate")
    async def validate(request: Request) -> JSONResponse:
        request_id = request.headers.get(REQUEST_ID_HEADER)
        try:
            username, password = validate_credentials(
                parse_json_object(await read_body(request, settings.max_request_bytes))
            )
        except Rejected as rejected:
            log.info("auth.invalid_request", request_id=request_id, field=rejected.field)
            return rejected_response(rejected)
        issued = state.tokens.validate(username, password)
        if issued is None:
            log.info("auth.rejected", request_id=request_id)
            return error_response(401, "invalid_credentials", "username or password is not valid")
        log.info("auth.accepted", request_id=request_id, account_id=issued.account.account_id)
        return JSONResponse(
            {
                "api_key": issued.api_key,
                "account_id": issued.account.account_id,
                "email": issued.account.email,
                "expires_in": issued.expires_in,
            }
        )

    def record_email(account: Account, raw: bytes, request_id: str | None, key: str | None) -> StoredResponse:
        """Validates and records one email; the answer to give, which idempotency may replay later."""
        try:
            payload = parse_json_object(raw)
            sizes = validate_email(payload, max_attachment_bytes=settings.max_attachment_bytes)
        except Rejected as rejected:
            log.info("email.rejected", request_id=request_id, status=rejected.status, field=rejected.field)
            return StoredResponse(rejected.status, rejected.body())
        record = EmailRecord(
            message_id=uuid.uuid4().hex,
            account_id=account.account_id,
            received_at=datetime.now(UTC).isoformat(),
            request_id=request_id,
            idempotency_key=key,
            payload=payload,
            attachment_sizes=sizes,
        )
        state.inbox.add(record)
        state.stats.emails_recorded += 1
        state.metrics.emails.labels("v1", "queued").inc()
        log.info(
            "email.recorded",
            request_id=request_id,
            message_id=record.message_id,
            account_id=account.account_id,
            idempotency_key=key,
            recipients=sum(len(payload.get(field) or ()) for field in ("to", "cc", "bcc")),
            attachments=len(sizes),
        )
        body: dict[str, Any] = {"message_id": record.message_id, "status": "queued"}
        return StoredResponse(200, body)

    @router.post("/v1/emails")
    async def send_email(request: Request) -> JSONResponse:
        request_id = request.headers.get(REQUEST_ID_HEADER)
        token = _bearer_token(request)
        account = state.tokens.resolve(token) if token else None
        if account is None:
            await discard_body(request)
            log.info("email.unauthorized", request_id=request_id, token_sent=token is not None)
            return error_response(
                401,
                "invalid_token",
                "missing, unknown or expired api key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        try:
            raw = await read_body(request, settings.max_request_bytes)
            key = validate_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
        except Rejected as rejected:
            log.info("email.rejected", request_id=request_id, status=rejected.status, field=rejected.field)
            return rejected_response(rejected)
        if key is None:
            return _response(record_email(account, raw, request_id, None))
        async with state.idempotency.hold(account.account_id, key):
            stored = state.idempotency.get(account.account_id, key)
            if stored is not None:
                log.info("email.replayed", request_id=request_id, idempotency_key=key)
                return _response(stored, replayed=True)
            answer = record_email(account, raw, request_id, key)
            # Like most APIs, only a success is remembered: a rejected request may be corrected and retried.
            if answer.status == 200:
                state.idempotency.put(account.account_id, key, answer)
            return _response(answer)

    return router
