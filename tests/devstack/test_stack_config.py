"""How devstack turns settings into each service's environment: the user's settings over its defaults, explicit
values (the tests' ports, extra_env) over both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.banner import Login, render_banner, sandbox_logins
from devstack.certs import DevCertificate
from devstack.stack import Stack, StackConfigError, StackPorts

CERT = DevCertificate(Path("ca.pem"), Path("cert.pem"), Path("key.pem"))


def test_ports_default_to_the_documented_local_ones() -> None:
    assert StackPorts.from_environment({}) == StackPorts(2587, 2465, 8080, 50051, 8081, 8090)


def test_ports_follow_each_services_variable() -> None:
    env = {
        "SMTP_STARTTLS_PORT": "3587",
        "SMTP_TLS_PORT": "3465",
        "EDGE_HTTP_PORT": "9080",
        "GRPC_PORT": "60051",
        "FORWARDER_HTTP_PORT": "9081",
        "SANDBOX_PORT": "9090",
    }
    assert StackPorts.from_environment(env) == StackPorts(3587, 3465, 9080, 60051, 9081, 9090)


def test_ephemeral_ports_are_six_distinct_ports() -> None:
    """A stack whose edge got one port twice fails to start ("address already in use"). Drawn one after the other,
    about one set in 700 had a duplicate: 3,000 draws would all but surely catch that again."""
    for _ in range(3000):
        ports = StackPorts.ephemeral()
        chosen = [getattr(ports, name) for name in StackPorts.__dataclass_fields__]
        assert len(set(chosen)) == 6, ports


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HTTP_PORT": "9000"}, "EDGE_HTTP_PORT"),
        ({"SMTP_STARTTLS_PORT": "smtp"}, "SMTP_STARTTLS_PORT must be a port number, not 'smtp'"),
        ({"GRPC_PORT": "70000"}, "GRPC_PORT must be a port number between 1 and 65535"),
    ],
)
def test_settings_make_run_cannot_honour_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(StackConfigError, match=message):
        StackPorts.from_environment(env)


def test_the_users_settings_win_over_devstack_defaults() -> None:
    settings = {"SMTP_HOSTNAME": "mail.example.test", "SMTP_HOST": "0.0.0.0", "GRPC_HOST": "::", "LOG_LEVEL": "DEBUG"}
    stack = Stack(StackPorts(), CERT, settings=settings)
    assert stack.edge.env["SMTP_HOSTNAME"] == "mail.example.test"
    assert stack.edge.env["SMTP_HOST"] == "0.0.0.0"
    assert stack.smtp_host == "127.0.0.1"  # where a local client connects
    assert stack.forwarder.env["GRPC_HOST"] == "::"
    assert stack.edge.env["FORWARDER_ADDRESS"] == "[::1]:50051"
    assert all(service.env["LOG_LEVEL"] == "DEBUG" for service in stack.services)


def test_explicit_ports_and_extra_env_win_over_the_users_settings() -> None:
    ports = StackPorts.ephemeral()
    settings = {"SMTP_STARTTLS_PORT": "1", "HTTP_PORT": "2", "SMTP_HOSTNAME": "mail.example.test"}
    stack = Stack(ports, CERT, settings=settings, extra_env={"edge": {"SMTP_HOSTNAME": "test.example"}})
    assert stack.edge.env["SMTP_STARTTLS_PORT"] == str(ports.smtp_starttls)
    assert stack.edge.env["HTTP_PORT"] == str(ports.edge_http)
    assert stack.forwarder.env["HTTP_PORT"] == str(ports.forwarder_http)
    assert stack.edge.env["SMTP_HOSTNAME"] == "test.example"
    assert stack.edge.ready_url == f"http://127.0.0.1:{ports.edge_http}/health/ready"


def test_without_settings_the_local_defaults_apply() -> None:
    ports = StackPorts.ephemeral()
    stack = Stack(ports, CERT)
    assert stack.edge.env["SMTP_HOSTNAME"] == "localhost"
    assert stack.edge.env["TLS_CERT_FILE"] == "cert.pem"
    assert stack.edge.env["FORWARDER_ADDRESS"] == f"127.0.0.1:{ports.forwarder_grpc}"
    assert stack.forwarder.env["CAKEMAIL_API_URL"] == stack.sandbox_url == f"http://127.0.0.1:{ports.sandbox_http}"
    assert [service.name for service in stack.services] == ["cakemail-sandbox", "forwarder", "smtp-edge"]


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_cakemail_api_url_keeps_the_sandbox(blank: str) -> None:
    stack = Stack(StackPorts(), CERT, settings={"CAKEMAIL_API_URL": blank})
    assert stack.has_sandbox
    assert stack.api_url == "http://127.0.0.1:8090"


def test_cakemail_api_url_means_no_sandbox() -> None:
    stack = Stack(StackPorts(), CERT, settings={"CAKEMAIL_API_URL": "https://api.cakemail.dev"})
    assert [service.name for service in stack.services] == ["forwarder", "smtp-edge"]
    assert stack.api_url == "https://api.cakemail.dev"
    with pytest.raises(RuntimeError, match="no sandbox"):
        _ = stack.sandbox
    with pytest.raises(RuntimeError, match="no sandbox"):
        _ = stack.sandbox_url


@pytest.mark.parametrize(
    ("accounts", "logins"),
    [
        (None, [Login("demo@example.com", "demo-password")]),
        (
            [{"username": "demo@example.com", "password": "demo-password"}, {"username": "a@x.test", "password": "p"}],
            [Login("demo@example.com", "demo-password"), Login("a@x.test", None)],
        ),
        # The demo username with another password: that password is not the documented one, so not printed.
        ([{"username": "demo@example.com", "password": "changed"}], [Login("demo@example.com", None)]),
        ({"not": "a list"}, []),
    ],
)
def test_sandbox_logins_print_only_the_documented_demo_password(accounts: object, logins: list[Login]) -> None:
    assert sandbox_logins(None if accounts is None else json.dumps(accounts)) == logins


def test_banner_shows_the_configured_accounts_without_their_passwords() -> None:
    accounts = [{"username": "alice@example.test", "password": "alice-secret-7"}]
    stack = Stack(StackPorts(), CERT, extra_env={"sandbox": {"SANDBOX_ACCOUNTS": json.dumps(accounts)}})
    banner = render_banner(stack)
    assert "alice@example.test (password as set in SANDBOX_ACCOUNTS, not printed)" in banner
    assert "alice-secret-7" not in banner and "demo" not in banner
    assert "--auth-user 'alice@example.test' --auth-password 'PASSWORD'" in banner


def test_banner_for_the_default_sandbox_and_for_a_real_api() -> None:
    default = render_banner(Stack(StackPorts(), CERT))
    assert "login   demo@example.com / demo-password" in default
    assert "curl -s 'http://127.0.0.1:8090/sandbox/emails?content=0'" in default
    assert "See what was sent (inbox):   http://127.0.0.1:8090/ " in default
    real = render_banner(Stack(StackPorts(), CERT, settings={"CAKEMAIL_API_URL": "https://api.cakemail.dev"}))
    assert "API     https://api.cakemail.dev (CAKEMAIL_API_URL; no sandbox)" in real
    assert "demo" not in real and "/sandbox/" not in real and "See what was sent" not in real


def test_banner_names_a_certificate_set_by_the_user() -> None:
    banner = render_banner(Stack(StackPorts(), CERT, settings={"TLS_CERT_FILE": "/etc/ssl/mail.pem"}))
    assert "TLS     /etc/ssl/mail.pem (TLS_CERT_FILE)" in banner
