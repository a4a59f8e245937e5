"""Sandbox-only endpoints (/sandbox/...): what tests and developers use to look inside and to inject faults."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cakemail_sandbox.faults import FAULT_TABLE
from cakemail_sandbox.responses import read_body, rejected_response
from cakemail_sandbox.state import SandboxState
from cakemail_sandbox.validation import Rejected, parse_json_object

log = structlog.get_logger(__name__)


class NewSender(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    email: str = Field(min_length=1)
    name: str = ""
    confirmed: bool = True


def _first_error(exc: ValidationError) -> Rejected:
    error = exc.errors()[0]
    # pydantic marks a bad dict key with a "[key]" step: the key itself names the field well enough.
    field = ".".join(str(part) for part in error["loc"] if part != "[key]") or None
    return Rejected(error["msg"], field)


def control_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/sandbox")

    @router.get("/emails")
    async def list_emails(content: bool = True) -> dict[str, list[dict[str, Any]]]:
        return {"emails": [record.to_json(content=content) for record in state.inbox.all()]}

    @router.delete("/emails", status_code=204)
    async def clear_emails() -> Response:
        state.clear_emails()
        return Response(status_code=204)

    @router.post("/senders", response_model=None)
    async def put_sender(request: Request) -> JSONResponse:
        """Adds a sender to an account (or updates the one with that address): tests confirm and unconfirm."""
        try:
            body = parse_json_object(await read_body(request, state.settings.max_request_bytes))
            wanted = NewSender.model_validate(body)
        except ValidationError as exc:
            return rejected_response(_first_error(exc))
        except Rejected as rejected:
            return rejected_response(rejected)
        if wanted.account_id not in state.known_account_ids():
            return rejected_response(Rejected(f"no user has account {wanted.account_id}", "account_id"))
        sender, created = state.senders.put(wanted.account_id, wanted.email, wanted.name, wanted.confirmed)
        log.info("sender.put", account_id=sender.account_id, sender_id=sender.id, created=created)
        return JSONResponse({**sender.to_json(), "account_id": sender.account_id}, status_code=201 if created else 200)

    @router.get("/stats")
    async def stats() -> dict[str, int]:
        return state.stats.to_json()

    @router.delete("/stats", status_code=204)
    async def reset_stats() -> Response:
        state.stats.reset()
        return Response(status_code=204)

    @router.get("/faults")
    async def get_faults() -> dict[str, dict[str, Any]]:
        return state.faults.snapshot()

    @router.put("/faults", response_model=None)
    async def put_faults(request: Request) -> JSONResponse | dict[str, dict[str, Any]]:
        try:
            body = parse_json_object(await read_body(request, state.settings.max_request_bytes))
            table = FAULT_TABLE.validate_python(body)
        except ValidationError as exc:
            return rejected_response(_first_error(exc))
        except Rejected as rejected:
            return rejected_response(rejected)
        state.faults.replace(table)
        log.info("faults.set", routes=sorted(table))
        return state.faults.snapshot()

    @router.delete("/faults", status_code=204)
    async def clear_faults() -> Response:
        state.faults.clear()
        log.info("faults.cleared")
        return Response(status_code=204)

    @router.post("/tokens/revoke")
    async def revoke_tokens() -> dict[str, int]:
        revoked = state.tokens.revoke_all() + state.oauth.revoke_all()
        log.info("tokens.revoked", count=revoked)
        return {"revoked": revoked}

    @router.post("/reset", status_code=204)
    async def reset() -> Response:
        state.reset()
        log.info("sandbox.reset")
        return Response(status_code=204)

    return router
