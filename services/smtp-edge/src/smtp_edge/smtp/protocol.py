"""aiosmtpd's SMTP protocol with the gateway's session, implicit TLS before the greeting, admission policies,
replies from the reply table (smtp/replies.py), bulk DATA, per-connection logging and a goodbye on shutdown."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import functools
import re
import ssl
import time
from asyncio import sslproto
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, AnyStr, cast

import structlog
from aiosmtpd.smtp import MISSING, SMTP, TLSSetupException, _Missing, syntax

from gateway_common import tracing
from gateway_common.correlation import new_correlation_id
from gateway_mime.headers import SIMPLE_ADDR_SPEC
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.policy.admission import Admission
from smtp_edge.smtp import replies
from smtp_edge.smtp.command_limits import INVALID, CommandBudget
from smtp_edge.smtp.data_budget import DataBudget, declared_size
from smtp_edge.smtp.data_reader import BareNewline, DataProblem, read_data
from smtp_edge.smtp.drain import DRAIN_LINGER_SECONDS, SHUTTING_DOWN, LiveSessions
from smtp_edge.smtp.help import SessionState, help_reply
from smtp_edge.smtp.session import GatewaySession
from smtp_edge.tls.early_data import feed

log = structlog.get_logger(__name__)

# aiosmtpd's replies to lines that reach no command method: counted as "invalid" commands (smtp/command_limits.py).
_NOT_A_COMMAND = frozenset(
    {"500 Error: bad syntax", "500 Command line too long", "530 Must issue a STARTTLS command first"}
)


# The attributes aiosmtpd's __init__ collects from the protocol: its commands and its AUTH mechanisms (per class).
_LOOKED_UP_BY_AIOSMTPD = ("smtp_", "auth_")
_CLASS_NAMES_LOOKED_UP: dict[type, tuple[str, ...]] = {}


def _class_names_looked_up_by_aiosmtpd(cls: type) -> tuple[str, ...]:
    names = _CLASS_NAMES_LOOKED_UP.get(cls)
    if names is None:
        names = _CLASS_NAMES_LOOKED_UP[cls] = tuple(n for n in dir(cls) if n.startswith(_LOOKED_UP_BY_AIOSMTPD))
    return names


# MAIL FROM:<local@domain> and RCPT TO: as nearly every client sends them: dot-atoms of ASCII atext (no quoting,
# source route, comment or "=?"). aiosmtpd reads every path with the stdlib's RFC 5322 parser (get_angle_addr:
# ~60 us, twice per message); for these paths _getaddr below gives what it gives (tests/unit/edge/test_getaddr.py).
_SIMPLE_PATH = re.compile(rf"<({SIMPLE_ADDR_SPEC})>")


@dataclasses.dataclass(frozen=True, slots=True)
class SessionLimits:
    """What one session may hold or ask for (docs/configuration.md)."""

    max_commands_without_message: int = 100
    max_rcpt_without_message: int = 1000
    header_limit: int | None = None
    data_budget: DataBudget | None = None
    tls_read_buffer_bytes: int = 64 * 1024


class TlsLayer(sslproto.SSLProtocol):
    """asyncio's TLS layer (aiosmtpd's STARTTLS uses it, on uvloop too) with a smaller read buffer. asyncio's 256 KiB
    is allocated per connection (an idle TLS connection held ~300 KiB) and is how much of one client's upload the
    loop decrypts and hands on in one turn, while every other session waits for that turn to end: with 64 KiB, four
    clients uploading 25 MB at once no longer hold up a small message's round trips (docs/security.md, "Resource
    exhaustion"). `max_size` is the attribute asyncio's own __init__ and reads size from."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        waiter: asyncio.Future[None],
        *,
        read_buffer_bytes: int,
    ) -> None:
        self.max_size = read_buffer_bytes  # type: ignore[misc]  # asyncio's class attribute, per connection here
        super().__init__(loop, app_protocol, context, waiter, server_side=True)


class GatewaySMTP(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        listener: str,
        metrics: EdgeMetrics,
        admission: Admission,
        live: LiveSessions,
        tls_before_greeting: bool = False,
        bare_newline: BareNewline = BareNewline.NORMALIZE,
        limits: SessionLimits = SessionLimits(),
        **kwargs: Any,
    ) -> None:
        self._listener = listener
        self._metrics = metrics
        self._admission = admission
        self._live = live
        self._connection_id = new_correlation_id()
        self._greeted = False
        self._admitted_ip: str | None = None
        self._client_ip: str | None = None
        self._verbatim = False  # EHLO/HELO's 250 lines carry no enhanced codes (RFC 2034)
        self.in_transaction = False
        self._tls_before_greeting = tls_before_greeting
        self._bare_newline = bare_newline
        self._limits = limits
        self.data_budget = limits.data_budget or DataBudget(2**62)
        self._commands = CommandBudget(
            max_commands=limits.max_commands_without_message, max_rcpt=limits.max_rcpt_without_message
        )
        self._introspected = True
        try:
            super().__init__(handler, **kwargs)
        finally:
            self._introspected = False
        self._smtp_methods = {
            name: functools.partial(self._run_command, name, method) for name, method in self._smtp_methods.items()
        }

    def __dir__(self) -> Iterable[str]:
        """While aiosmtpd's __init__ runs, only the names it looks for. It finds its commands and AUTH mechanisms
        on every connection with dir() and inspect.getmembers(), which reads every attribute of the protocol
        (~250, properties included): two thirds of the ~330 us a connection's protocol took to make."""
        if self.__dict__.get("_introspected"):
            own = [name for name in self.__dict__ if name.startswith(_LOOKED_UP_BY_AIOSMTPD)]
            return [*_class_names_looked_up_by_aiosmtpd(type(self)), *own]
        return super().__dir__()

    async def _run_command(self, command: str, method: Callable[[str], Awaitable[None]], arg: str) -> None:
        """Every command, around aiosmtpd's method: counted against the session's command limits first; its
        processing time measured (DATA's from the end of the data, in smtp_DATA, not the upload); while the edge
        drains, answered with a goodbye (QUIT keeps its 221). One coroutine, not a wrapper per concern: these were
        three closures per command made for every connection (~40), and three frames more per command."""
        if not self._commands.spend(command):
            await self._over_command_limit(command)
            return
        started = time.perf_counter()
        try:
            if self._live.draining and command != "QUIT":
                await self.say_goodbye(SHUTTING_DOWN)
            else:
                await method(arg)
        finally:
            if command != "DATA":
                self._metrics.command_timer(command)(time.perf_counter() - started)

    async def _over_command_limit(self, command: str) -> None:
        log.info("command limit reached", command=command)
        self._metrics.policy_refusals.labels("command_limit").inc()
        await self.say_goodbye(replies.TOO_MANY_COMMANDS.format(command=command))
        # The rest of a pipelined batch is still buffered: let the loop run (and the connection's end cancel this
        # session) rather than spin through it here.
        await asyncio.sleep(0)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's (the path's address, and the rest of the argument: its parameters), for the usual path
        without the stdlib's parser."""
        path = _SIMPLE_PATH.match(arg)
        if path is None or "=?" in path[1]:
            return super()._getaddr(arg)
        rest = arg[path.end() :]
        if rest[:1] in (" ", "\t"):  # the stdlib's folding white space: every kind str.lstrip() strips
            rest = rest.lstrip()
        if rest[:1] == "(":  # a comment: the stdlib's to read
            return super()._getaddr(arg)
        address = path[1]
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def _create_session(self) -> GatewaySession:
        session = GatewaySession(self.loop, self._connection_id, self._listener)
        previous = getattr(self, "session", None)
        if previous is not None:
            # aiosmtpd starts a new Session after STARTTLS; what the PROXY header said still holds.
            session.proxy_data = previous.proxy_data
        return session

    @property
    def client_ip(self) -> str:
        """The real client, fixed before the greeting (PROXY header, else the socket peer)."""
        return self._client_ip or self._peer_ip()

    def _peer_ip(self) -> str:
        session = self.session
        if session is not None and session.proxy_data is not None and session.proxy_data.src_addr:
            return str(session.proxy_data.src_addr)
        peer: Any = session.peer if session is not None else None  # (host, port) despite aiosmtpd's hint
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    async def _handle_client(self) -> None:
        structlog.contextvars.bind_contextvars(session_id=self._connection_id, listener=self._listener)
        self._metrics.sessions.labels(self._listener).inc()
        self._metrics.active_connections.inc()
        self._live.add(self)
        opened = time.perf_counter()
        try:
            with tracing.span("smtp session", {"smtp.listener": self._listener, "session_id": self._connection_id}):
                await super()._handle_client()
        finally:
            self._live.discard(self)
            self._metrics.active_connections.dec()
            self._metrics.connection_duration.observe(time.perf_counter() - opened)
            if self._admitted_ip is not None:
                self._admission.release(self._admitted_ip)
                self._admitted_ip = None
            log.info("session closed")

    async def _start_tls(self, *, buffered_bytes_are_tls: bool) -> bool:
        """Puts TLS under the dialogue, the way aiosmtpd does STARTTLS, so both listeners share one dialogue; False
        (connection closed) when the handshake fails.

        Bytes already in the stream reader's buffer: for implicit TLS (RFC 8314) the client's ClientHello, sent
        right behind a PROXY header or just fast, so they go to the TLS layer; after STARTTLS, commands pipelined
        behind it in clear text (a man in the middle may have added them: CVE-2011-0411), so they are dropped, never
        processed. Either way the reader lets go of them now, and resumes the socket if it had paused reading over
        them (more than twice its line limit buffered, e.g. behind an over-long line): a paused socket would never
        hand the handshake its bytes, and a client sending plain text would wait for COMMAND_TIMEOUT_SECONDS
        instead of failing at once."""
        assert self.tls_context is not None
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._tls_protocol = TlsLayer(
            self.loop, self, self.tls_context, waiter, read_buffer_bytes=self._limits.tls_read_buffer_bytes
        )
        self._original_transport = self.transport
        assert self._original_transport is not None
        reader = self._reader
        buffered = bytes(reader._buffer)  # type: ignore[attr-defined]
        reader._buffer.clear()  # type: ignore[attr-defined]
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        reader._maybe_resume_transport()  # type: ignore[attr-defined]
        if buffered and buffered_bytes_are_tls:
            feed(self._tls_protocol, buffered)
        elif buffered:
            log.info("bytes pipelined behind STARTTLS dropped", size=len(buffered))
        try:
            await waiter
        except Exception as error:  # not TLS, wrong version, no common cipher, gone
            log.info("tls handshake failed", error=str(error) or type(error).__name__)
            self._original_transport.close()
            return False
        return True

    async def _start_tls_before_greeting(self) -> bool:
        if await self._start_tls(buffered_bytes_are_tls=True):
            return True
        self._metrics.connections.labels("tls_failed").inc()  # a connection never accepted (docs/operations.md)
        # The TLS layer tells its application only of connections it completed: this session would otherwise wait
        # for a line that never comes until shutdown. End it the way aiosmtpd ends a failed STARTTLS.
        self.connection_lost(None)
        return False

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            await self.push(replies.TLS_ALREADY_ACTIVE)
            return
        if arg:
            await self.push(replies.SYNTAX.format(syntax="STARTTLS"))
            return
        await self.push(replies.READY_FOR_TLS)
        if not await self._start_tls(buffered_bytes_are_tls=False):
            raise TLSSetupException()  # aiosmtpd's loop then ends the session, as for its own STARTTLS

    async def handle_exception(self, error: Exception) -> str:
        """A bug while handling a command: logged, and the client hears a table reply, never the exception's text
        (aiosmtpd's default answers "500 Error: (ValueError) ...")."""
        if not isinstance(error, TLSSetupException):  # a failed handshake is logged already; the session just ends
            log.exception("error while handling a command")
        return replies.LOCAL_ERROR

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True, log_client_response: bool = False
    ) -> _Missing | bytes:
        """aiosmtpd's, except for a response longer than the line limit: aiosmtpd lets the reader's ValueError
        through (answered with the exception's text); here the whole line is read and dropped and the client told
        500 5.5.6 (RFC 4954 4). Responses are never logged."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (base64.b64encode(raw) if encode_to_b64 else raw))
        line = await self._read_line()
        if line is None:
            await self.push(replies.AUTH_LINE_TOO_LONG)
            return MISSING
        blob = line.strip()
        if blob == b"*":  # RFC 4954: the client cancels the exchange
            await self.push(replies.AUTH_ABORTED)
            return MISSING
        try:
            return base64.b64decode(blob, validate=True)
        except binascii.Error:
            await self.push(replies.AUTH_BAD_BASE64)
            return MISSING

    async def _read_line(self) -> bytes | None:
        """One line, or None when it was longer than the reader's limit (then read to its end and dropped, as
        aiosmtpd does with an over-long command). At EOF, what there was (like StreamReader.readline)."""
        reader = self._reader
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as eof:
            return eof.partial
        except asyncio.LimitOverrunError as overrun:
            await reader.read(overrun.consumed)
        while True:
            try:
                await reader.readuntil(b"\n")
                return None
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as overrun:
                await reader.read(overrun.consumed)

    async def _greet_or_refuse(self, greeting: str) -> None:
        """The one hook point before the greeting: PROXY data is known, nothing else has been said."""
        self._greeted = True
        if self._tls_before_greeting and not await self._start_tls_before_greeting():
            return
        ip = self._client_ip = self._peer_ip()
        structlog.contextvars.bind_contextvars(client_ip=ip)
        refusal = await self._admission.admit(ip)
        if refusal is not None:
            log.info("connection refused", reply=refusal.reply, policy=refusal.policy)
            self._metrics.policy_refusals.labels(refusal.policy).inc()
            self._metrics.connections.labels("refused").inc()
            await self.say_goodbye(refusal.reply)
            return
        self._admitted_ip = ip
        self._metrics.connections.labels("accepted").inc()
        log.info("session opened")
        await super().push(greeting)

    async def say_goodbye(self, reply: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            await super().push(reply)
        if self.transport is not None:
            self.transport.close()

    def _timeout_cb(self) -> None:
        """RFC 5321 4.5.3.2: say why before closing an idle connection (aiosmtpd just closes it)."""
        reply = SHUTTING_DOWN if self._live.draining else replies.TIMEOUT
        log.info("session timed out", reply=reply)
        # A cast, not isinstance(asyncio.WriteTransport): uvloop's transports implement it without subclassing it.
        transport = cast(asyncio.WriteTransport | None, self.transport)
        if transport is not None and not transport.is_closing():
            transport.write(reply.encode() + b"\r\n")
            transport.close()

    def _restart_idle_timer(self) -> None:
        """The client's turn again: the command timeout, or while draining the short wait for a last QUIT."""
        if self.transport is not None and not self.transport.is_closing():
            self._reset_timeout(DRAIN_LINGER_SECONDS if self._live.draining else None)

    def close_soon(self) -> None:
        """Draining: the client may still QUIT (221) for a moment; anything else, or silence, gets the 421."""
        self._restart_idle_timer()

    @contextlib.contextmanager
    def servers_turn(self) -> Iterator[None]:
        """No idle-command timer while the edge itself is busy (forwarding a message, checking credentials): the
        wait is bounded by the forwarder's deadline, and RFC 5321 4.5.3.2 leaves the reply timeout to the client.
        A timer running here told clients 421 for mail that was then delivered."""
        handle = self._timeout_handle
        if handle is not None:
            handle.cancel()
        try:
            yield
        finally:
            self._restart_idle_timer()

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:  # answered here: under _verbatim the syntax error would lose its enhanced code
            await self.push(replies.SYNTAX.format(syntax="EHLO hostname"))
            return
        self._verbatim = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._verbatim = False

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if not hostname:
            await self.push(replies.SYNTAX.format(syntax="HELO hostname"))
            return
        self._verbatim = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._verbatim = False

    @property
    def state(self) -> SessionState:
        session = self.session
        return SessionState(
            tls=self._tls_protocol is not None,
            helo_only=bool(session is not None and session.host_name and not session.extended_smtp),
            authenticated=bool(session is not None and session.authenticated),
        )

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        """HELP lists what works in this session's state (aiosmtpd's asks for AUTH and omits overridden commands)."""
        await self.push(help_reply(self.state, arg or ""))

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message read in bulk (smtp/data_reader.py); every outcome is counted."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(replies.NEED_RCPT)
            return
        if arg:
            await self.push(replies.SYNTAX.format(syntax="DATA"))
            return
        # The message's bytes in flight, from the process's budget: what SIZE= declared (capped by the limit, which
        # MAIL enforced) at once, or a byte to begin with; the rest as it arrives (smtp/data_budget.py).
        reservation = self.data_budget.reservation()
        declared = declared_size(self.envelope.mail_options) or 0
        if not reservation.reserve(max(min(declared, self.data_size_limit or declared), 1)):
            log.info("data refused: bytes in flight budget", free=self.data_budget.free)
            self._metrics.policy_refusals.labels("data_budget").inc()
            await self.push(replies.INSUFFICIENT_RESOURCES)
            return
        self.in_transaction = True
        self._live.transaction_started()
        try:
            await self.push(replies.START_DATA)
            outcome = await read_data(
                self._reader,
                self.data_size_limit,
                on_progress=self._reset_timeout,
                bare_newline=self._bare_newline,
                header_limit=self._limits.header_limit,
                admit=reservation.admit,
            )
            self._commands.message_received()
            received = time.perf_counter()
            self._metrics.emails_received.inc()
            if outcome.problem is DataProblem.NO_BUDGET:
                log.info("message refused: bytes in flight budget", free=self.data_budget.free)
                self._metrics.policy_refusals.labels("data_budget").inc()
            if outcome.problem is not None:
                limit = self._limits.header_limit if outcome.problem is DataProblem.HEADERS_TOO_LARGE else None
                status = outcome.problem.value.format(limit=limit or self.data_size_limit)
            else:
                self.envelope.content = self.envelope.original_content = outcome.content
                del outcome  # the handler takes the bytes from the envelope and lets go of them when it can
                with self.servers_turn(), tracing.span("smtp DATA", {"session_id": self._connection_id}) as span:
                    status = await self._call_handler_hook("DATA")
                    span.set_attribute("smtp.reply_code", status[:3])
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            self._metrics.messages.labels(status[:3]).inc()
            await self.push(status)
            self._metrics.processing_duration.labels("DATA").observe(time.perf_counter() - received)
        finally:
            reservation.release()
            self.in_transaction = False
            self._live.transaction_ended()
            if self._live.draining:
                self.close_soon()

    async def push(self, status: AnyStr) -> None:
        """Every reply goes out through here, at least one per command line (aiosmtpd's loop pushes on every path),
        so this is where a session lets the others run: aiosmtpd takes pipelined commands from its buffer without
        ever suspending (readuntil() on buffered bytes and drain() below the high-water mark return at once), and a
        batch of thousands would hold the event loop, and every other session, until its end. The yield comes
        before the write: after STARTTLS's 220 nothing may run until the TLS layer is in place.

        Only while the client's next bytes are already buffered (it pipelines): a yield puts this session behind a
        whole turn of the loop, and aiosmtpd pushes each line of a multi-line reply on its own (EHLO: 8), so an
        unconditional yield made every EHLO wait eight turns; a session that waits for its client suspends anyway."""
        if self._reader._buffer:  # type: ignore[attr-defined]  # see smtp/data_reader.py on `_buffer`
            await asyncio.sleep(0)
        if isinstance(status, str) and status in _NOT_A_COMMAND and not self._commands.spend(INVALID):
            await self._over_command_limit(INVALID)
            return
        if isinstance(status, str):
            if not self._greeted and status.startswith("220 "):
                await self._greet_or_refuse(replies.GREETING.format(hostname=self.hostname))
                return
            if not self._verbatim:
                status = replies.outgoing(status, size_limit=self.data_size_limit or 0)
        await super().push(status)
