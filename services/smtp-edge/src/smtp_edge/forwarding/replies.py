"""Pure: the forwarder's answer -> the SMTP reply (rows of the reply table, smtp/replies.py). A 250 only when
Cakemail accepted the message."""

from __future__ import annotations

import grpc

from cakemail.gateway.v1 import forwarder_pb2 as pb
from smtp_edge.smtp import replies
from smtp_edge.smtp.replies import safe_text, with_detail

__all__ = ["AUTH_INVALID", "AUTH_MFA", "AUTH_OK", "AUTH_TEMPORARY", "TEMPORARY_FAILURE", "safe_text"]

AUTH_OK = replies.AUTH_OK
AUTH_INVALID = replies.AUTH_INVALID
AUTH_TEMPORARY = replies.AUTH_TEMPORARY
AUTH_MFA = replies.AUTH_MFA
TEMPORARY_FAILURE = replies.TEMPORARY_FAILURE


def reply_for_response(response: pb.SubmitMessageResponse) -> str:
    result = response.result
    if result == pb.SUBMIT_RESULT_ACCEPTED and response.message_ids:
        return replies.QUEUED.format(ids=safe_text(" ".join(response.message_ids)))
    if result == pb.SUBMIT_RESULT_REJECTED_INVALID:
        return with_detail(replies.REJECTED, response.detail)
    if result == pb.SUBMIT_RESULT_REJECTED_FORBIDDEN:
        return with_detail(replies.FORBIDDEN, response.detail)
    if result == pb.SUBMIT_RESULT_REJECTED_TOO_LARGE:
        return with_detail(replies.REJECTED_TOO_LARGE, response.detail)
    if result == pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED:
        return with_detail(replies.UNSUPPORTED, response.detail)
    if result == pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED:
        # Temporary failures dominate: the client resends, and recipients already sent are not sent again.
        return with_detail(replies.RECIPIENTS_DEFERRED, response.detail)
    if result == pb.SUBMIT_RESULT_RECIPIENTS_REFUSED:
        return with_detail(replies.RECIPIENTS_REFUSED, response.detail)
    if result == pb.SUBMIT_RESULT_RATE_LIMITED:
        wait = response.retry_after_seconds
        return replies.RATE_LIMITED_FOR.format(seconds=wait) if wait else replies.RATE_LIMITED
    # An accepted result without an id, or a result this edge does not know: the client keeps the message.
    return TEMPORARY_FAILURE


def reply_for_submit_error(code: grpc.StatusCode, details: str) -> str:
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AUTH_INVALID
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return replies.SENDING_NOT_PERMITTED_MFA
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return replies.BUSY
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return with_detail(replies.NOT_PROCESSED, details)
    return TEMPORARY_FAILURE


def reply_for_auth_error(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return AUTH_MFA
    return AUTH_INVALID if code == grpc.StatusCode.UNAUTHENTICATED else AUTH_TEMPORARY
