"""JSON error answers in the API's one error shape, and reading a request body under a size limit."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from cakemail_sandbox.validation import PayloadTooLarge, Rejected


def error_response(
    status: int, error: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers=headers)


def rejected_response(rejected: Rejected) -> JSONResponse:
    return JSONResponse(rejected.body(), status_code=rejected.status)


def status_error_code(status: int) -> str:
    """`not_found`, `method_not_allowed`...: the `error` field for errors the framework raises."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge once it passes `limit`; an oversized body is still read to its end,
    so the client gets the 413 instead of a broken pipe while it is still uploading."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                chunks.clear()
            else:
                chunks.append(chunk)
    except ClientDisconnect as exc:
        raise Rejected("the client disconnected before sending the whole body") from exc
    if size > limit:
        raise PayloadTooLarge(f"request body is over the {limit} byte limit")
    return b"".join(chunks)


async def discard_body(request: Request) -> None:
    try:
        async for _ in request.stream():
            pass
    except ClientDisconnect:
        return


# The v2 API's error shape (FastAPI's): {"detail": [{"msg", "type", "loc"?, "code"?}, ...]}.
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def detail_response(
    status: int, details: list[dict[str, Any]], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": details}, status_code=status, headers=headers)


def unauthorized(msg: str) -> JSONResponse:
    return detail_response(401, [{"msg": msg, "type": "unauthorized", "code": 401}], BEARER_CHALLENGE)


def forbidden(msg: str) -> JSONResponse:
    return detail_response(403, [{"msg": msg, "type": "forbidden", "code": 403}])


def bad_request(msg: str, loc: list[str] | None = None) -> JSONResponse:
    detail: dict[str, Any] = {"msg": msg, "type": "bad_request"}
    if loc is not None:
        detail["loc"] = loc
    return detail_response(400, [detail])


def unprocessable(details: list[dict[str, Any]]) -> JSONResponse:
    return detail_response(422, details)
