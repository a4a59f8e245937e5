"""ForwarderService over grpc.aio: a thin shell that binds the correlation id and maps outcomes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn

import grpc
import structlog

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from forwarder.api.context import CallContext
from forwarder.credentials.principal import AccessToken, PasswordLogin
from forwarder.grpc_api.outcomes import (
    Failure,
    authenticate_outcome,
    is_temporary,
    status_of,
    submit_outcome,
    submit_response,
)
from forwarder.metrics import ForwarderMetrics
from forwarder.submission.assembly import AssembledMessage, MalformedStream, RawLimits, assemble, assemble_raw
from forwarder.submission.service import RecipientOutcome, SubmissionService
from gateway_common.correlation import GRPC_METADATA_KEY, new_correlation_id

log = structlog.get_logger(__name__)

# A direct caller's Cakemail access token (docs/grpc-api.md, "Authentication"): `authorization: Bearer <token>` and
# the account it acts for. Never logged.
AUTHORIZATION_KEY = "authorization"
ACCOUNT_ID_KEY = "x-cakemail-account-id"
_ACCOUNT_ID = re.compile(r"[1-9][0-9]{0,18}")


def access_token_of(context: grpc.aio.ServicerContext[object, object]) -> AccessToken | None:
    """The access token the call carries in its metadata, or None (then the request's credentials authenticate).
    Raises MalformedStream, naming the metadata key, when the metadata is not of the documented form."""
    values: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if key in (AUTHORIZATION_KEY, ACCOUNT_ID_KEY):
            if key in values:
                raise MalformedStream(f"metadata {key} given twice", field=f"metadata.{key}")
            values[key] = value if isinstance(value, str) else ""
    authorization = values.get(AUTHORIZATION_KEY)
    account = values.get(ACCOUNT_ID_KEY)
    if authorization is None:
        if account is not None:
            raise MalformedStream(
                f"metadata {ACCOUNT_ID_KEY} needs an access token (authorization: Bearer <token>)",
                field=f"metadata.{AUTHORIZATION_KEY}",
            )
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise MalformedStream(
            "metadata authorization must be 'Bearer <access token>'", field=f"metadata.{AUTHORIZATION_KEY}"
        )
    if account is None:
        raise MalformedStream(
            f"metadata {ACCOUNT_ID_KEY} is required with an access token: the Cakemail account to act for",
            field=f"metadata.{ACCOUNT_ID_KEY}",
        )
    if not _ACCOUNT_ID.fullmatch(account.strip()):
        raise MalformedStream(
            f"metadata {ACCOUNT_ID_KEY} must be a Cakemail account id (a positive integer)",
            field=f"metadata.{ACCOUNT_ID_KEY}",
        )
    return AccessToken(token, account.strip())


def _bind_request_id(context: grpc.aio.ServicerContext[object, object]) -> str:
    metadata = dict(context.invocation_metadata() or ())
    raw = metadata.get(GRPC_METADATA_KEY)
    request_id = raw if isinstance(raw, str) and raw else new_correlation_id()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def _deadline(context: grpc.aio.ServicerContext[object, object]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def _abort(context: grpc.aio.ServicerContext[object, object], failure: Failure) -> NoReturn:
    """Abort with the google.rpc.Status rich details in the trailers (grpc-status-details-bin)."""
    status = status_of(failure)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("ServicerContext.abort returned")


class ForwarderServicer(pb_grpc.ForwarderServiceServicer):
    def __init__(
        self, service: SubmissionService, metrics: ForwarderMetrics, *, size_limit: int, raw_limits: RawLimits
    ) -> None:
        self._service = service
        self._metrics = metrics
        self._size_limit = size_limit
        self._raw_limits = raw_limits

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.AuthenticateResponse:
        ctx = CallContext(_bind_request_id(context), _deadline(context))
        credentials = request.credentials
        try:
            access_token = access_token_of(context)
            if access_token is not None and (credentials.username or credentials.password):
                raise MalformedStream(
                    "credentials and an access token (authorization metadata) were both given: send one of them",
                    field="credentials",
                )
            principal = access_token or PasswordLogin(credentials.username, credentials.password)
            token = await self._service.authenticate_principal(principal, ctx)
        except Exception as exc:
            failure = authenticate_outcome(exc)
            log.info("authenticate failed", code=failure.code.name, reason=failure.details)
            await _abort(context, failure)
        return pb.AuthenticateResponse(account_id=token.account_id, email=token.email or credentials.username)

    async def SubmitMessage(
        self,
        request_iterator: AsyncIterator[pb.SubmitMessageRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.SubmitMessageResponse:
        return await self._submit(
            lambda token_auth: assemble(request_iterator, size_limit=self._size_limit, token_auth=token_auth), context
        )

    async def SubmitSmallMessage(
        self, request: pb.SubmitSmallMessageRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.SubmitSmallMessageResponse:
        frames = _one_frame(pb.SubmitMessageRequest(start=request.start))
        answer = await self._submit(
            lambda token_auth: assemble(frames, size_limit=self._size_limit, token_auth=token_auth), context
        )
        # Same field numbers: the small response is the streamed one's bytes (proto/ says so).
        return pb.SubmitSmallMessageResponse.FromString(answer.SerializeToString())

    async def SubmitRawMessage(
        self,
        request_iterator: AsyncIterator[pb.SubmitRawMessageRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.SubmitRawMessageResponse:
        answer = await self._submit(
            lambda token_auth: assemble_raw(request_iterator, limits=self._raw_limits, token_auth=token_auth), context
        )
        # Same field numbers: the raw response is the structured one's bytes (proto/ says so).
        return pb.SubmitRawMessageResponse.FromString(answer.SerializeToString())

    async def _submit(
        self,
        assembling: Callable[[bool], Awaitable[AssembledMessage]],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.SubmitMessageResponse:
        ctx = CallContext(_bind_request_id(context), _deadline(context))
        message: AssembledMessage | None = None
        try:
            access_token = access_token_of(context)
            message = await assembling(access_token is not None)
            self._metrics.submission_bytes.observe(message.size)
            outcomes = await self._service.submit(message, ctx, access_token)
            answer = submit_response(outcomes)
        except Exception as exc:
            answer = submit_outcome(exc)
            outcomes = ()
        for recipient in outcomes:
            self._metrics.recipients.labels(_recipient_label(recipient)).inc()
        if isinstance(answer, Failure):
            self._metrics.submissions.labels(answer.code.name.lower()).inc()
            log.warning("submission failed", code=answer.code.name, reason=answer.details)
            await _abort(context, answer)
        result_name = pb.SubmitResult.Name(answer.result).removeprefix("SUBMIT_RESULT_").lower()
        self._metrics.submissions.labels(result_name).inc()
        if answer.result == pb.SUBMIT_RESULT_ACCEPTED and message is not None:
            log.info(
                "submission accepted",
                message_ids=list(answer.message_ids),
                recipients=len(message.start.envelope.rcpt_tos),
                attachments=len(message.attachment_data),
                size=message.size,
            )
        else:
            log.info("submission refused", result=result_name, reason=answer.detail)
        return answer


async def _one_frame(frame: pb.SubmitMessageRequest) -> AsyncIterator[pb.SubmitMessageRequest]:
    yield frame


def _recipient_label(recipient: RecipientOutcome) -> str:
    if recipient.error is None:
        return "already_sent" if recipient.already_sent else "sent"
    return "deferred" if is_temporary(recipient.error) else "refused"
