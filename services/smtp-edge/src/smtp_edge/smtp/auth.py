"""SASL PLAIN and LOGIN (RFC 4616, draft-murchison-sasl-login) checked through the forwarder, without
blocking the event loop: aiosmtpd's own `authenticator=` is synchronous, so these replace its auth_ methods."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, AuthResult

from gateway_mime.frames import SmtpCredentials
from smtp_edge.forwarding.client import ForwarderClient
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.policy.auth_throttle import THROTTLED, AuthFailureThrottle
from smtp_edge.smtp import replies
from smtp_edge.smtp.session import GatewaySession

log = structlog.get_logger(__name__)

_HANDLED = AuthResult(success=False, handled=True)


class SaslSyntaxError(Exception):
    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def decode_b64(text: str) -> bytes:
    if text == "=":  # RFC 4954: "=" is an empty initial response
        return b""
    try:
        return b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SaslSyntaxError(replies.AUTH_BAD_BASE64) from None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslSyntaxError(replies.AUTH_NOT_UTF8) from None


def split_plain(blob: bytes) -> tuple[str, str]:
    """authzid NUL authcid NUL passwd; the authorization identity is ignored (we act as authcid only)."""
    parts = blob.split(b"\0")
    if len(parts) != 3:
        raise SaslSyntaxError(replies.AUTH_BAD_PLAIN)
    return _text(parts[1]), _text(parts[2])


class SaslAuthenticator:
    def __init__(self, forwarder: ForwarderClient, throttle: AuthFailureThrottle, metrics: EdgeMetrics) -> None:
        self._forwarder = forwarder
        self._throttle = throttle
        self._metrics = metrics

    async def plain(self, server: Any, args: list[str]) -> AuthResult:
        try:
            if len(args) == 2:
                blob = decode_b64(args[1])
            else:
                answer = await server.challenge_auth("", encode_to_b64=False)
                if answer is MISSING:  # "*" or bad base64: aiosmtpd already replied 501
                    return _HANDLED
                blob = answer
            username, password = split_plain(blob)
        except SaslSyntaxError as problem:
            await server.push(problem.reply)
            return _HANDLED
        return await self._check(server, "PLAIN", username, password)

    async def login(self, server: Any, args: list[str]) -> AuthResult:
        try:
            if len(args) == 2:
                raw_user = decode_b64(args[1])
            else:
                answer = await server.challenge_auth("Username:")
                if answer is MISSING:
                    return _HANDLED
                raw_user = answer
            username = _text(raw_user)
            answer = await server.challenge_auth("Password:")
            if answer is MISSING:
                return _HANDLED
            password = _text(answer)
        except SaslSyntaxError as problem:
            await server.push(problem.reply)
            return _HANDLED
        return await self._check(server, "LOGIN", username, password)

    async def _check(self, server: Any, mechanism: str, username: str, password: str) -> AuthResult:
        session: GatewaySession = server.session
        with server.servers_turn():
            answer = await self._forwarder.authenticate(username, password, correlation_id=session.correlation_id)
        self._metrics.auth_attempts.labels(mechanism, answer.outcome).inc()
        if not answer.accepted:
            log.info("auth refused", mechanism=mechanism, outcome=answer.outcome)
            if answer.outcome == "unauthenticated":
                self._metrics.auth_failures.inc()
            if answer.outcome == "unauthenticated" and await self._throttle.record_failure(server.client_ip):
                log.warning("auth failures over the limit; client in cool-down")
                self._metrics.policy_refusals.labels("auth_throttle").inc()
                await server.push(answer.reply)
                await server.say_goodbye(THROTTLED)
                return _HANDLED
            return AuthResult(success=False, handled=False, message=answer.reply)
        await self._throttle.record_success(server.client_ip)
        session.credentials = SmtpCredentials(username=username, password=password)
        # Success is recorded and answered here: aiosmtpd's own success path sets the deprecated
        # Session.login_data and logs a warning on every AUTH (aiosmtpd #347); Session.authenticated is the
        # supported field.
        session.authenticated = True
        # The user name is searched in logs, never a metric label (unbounded); the password goes nowhere.
        structlog.contextvars.bind_contextvars(authenticated_user=username)
        log.info("auth accepted", mechanism=mechanism)
        await server.push(answer.reply)
        return _HANDLED
