"""A session's protocol is made per connection: aiosmtpd's __init__ introspects it (dir(), inspect.getmembers(),
the EHLO hook's signature), which the edge keeps cheap (smtp/protocol.py's __dir__, smtp/handler.py's
__signature__). What aiosmtpd finds must be what it would find by looking at everything."""

from __future__ import annotations

import inspect

from aiosmtpd.smtp import _AuthMechAttr
from prometheus_client import CollectorRegistry

from devstack.certs import DevCertificate
from smtp_edge.app import EdgeApp
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.smtp.handler import GatewayHandler
from tests.conftest import in_process_edge_settings


def _edge(dev_certificate: DevCertificate) -> EdgeApp:
    return EdgeApp(in_process_edge_settings(dev_certificate, "127.0.0.1:1"), EdgeMetrics(CollectorRegistry()))


async def test_aiosmtpd_finds_every_command_and_mechanism(dev_certificate: DevCertificate) -> None:
    edge = _edge(dev_certificate)
    for listener in ("starttls", "implicit-tls"):
        protocol = getattr(edge.listeners, "_protocol")(listener)  # noqa: B009 (the listeners' factory)
        everything = object.__dir__(protocol)
        commands = {name.removeprefix("smtp_") for name in everything if name.startswith("smtp_")}
        assert set(getattr(protocol, "_smtp_methods")) == commands  # noqa: B009
        assert {"EHLO", "MAIL", "RCPT", "DATA", "STARTTLS", "AUTH", "QUIT"} <= commands
        # aiosmtpd's own expression (smtp.py, SMTP.__init__), over every attribute
        mechanisms = {
            getattr(method, "__auth_mechanism_name__", name.replace("auth_", "").replace("__", "-")): _AuthMechAttr(
                method, source is protocol
            )
            for source in (protocol, edge.handler)
            for name, method in inspect.getmembers(source)
            if name.startswith("auth_")
        }
        assert getattr(protocol, "_auth_methods") == mechanisms  # noqa: B009
        assert set(mechanisms) == {"PLAIN", "LOGIN"}
        assert dir(protocol) == sorted(everything)  # outside aiosmtpd's __init__, dir() is whole again


def test_the_ehlo_hook_signature_given_is_the_one_inspect_builds() -> None:
    given = inspect.signature(GatewayHandler.handle_EHLO)
    function = GatewayHandler.handle_EHLO
    saved = function.__signature__  # type: ignore[attr-defined]
    try:
        del function.__signature__  # type: ignore[attr-defined]
        assert inspect.signature(function) == given
    finally:
        function.__signature__ = saved  # type: ignore[attr-defined]
    assert len(inspect.signature(GatewayHandler.handle_EHLO.__get__(object())).parameters) == 5  # the 5-arg form
