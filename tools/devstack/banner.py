"""What `make run` prints once the stack is ready: where to connect, how to log in, one message to send.

Passwords: the banner prints only the documented demo password (demo@example.com / demo-password, public in the
README). Accounts set through SANDBOX_ACCOUNTS are listed by username only: their passwords are the user's own
choice, and make run's output often ends up in CI logs and terminal scrollback, where secrets must not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from devstack.stack import Stack, host_port

DEMO_USERNAME = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - the documented local demo login


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str | None  # None: not printed (see the module docstring)


def sandbox_logins(accounts_json: str | None) -> list[Login]:
    """The logins the sandbox accepts, from its SANDBOX_ACCOUNTS (unset: its built-in demo account)."""
    if accounts_json is None:
        return [Login(DEMO_USERNAME, DEMO_PASSWORD)]
    try:
        entries = json.loads(accounts_json)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    logins = []
    for entry in entries:
        username = entry.get("username") if isinstance(entry, dict) else None
        if isinstance(username, str):
            documented = username == DEMO_USERNAME and entry.get("password") == DEMO_PASSWORD
            logins.append(Login(username, DEMO_PASSWORD if documented else None))
    return logins


def render_banner(stack: Stack) -> str:
    ports = stack.ports
    starttls = host_port(stack.smtp_host, ports.smtp_starttls)
    implicit = host_port(stack.smtp_host, ports.smtp_implicit_tls)
    hostname = stack.edge.env["SMTP_HOSTNAME"]
    if stack.has_sandbox:
        logins = sandbox_logins(stack.sandbox.environment.get("SANDBOX_ACCOUNTS"))
        hidden = [login.username for login in logins if login.password is None]
        shown = [f"{login.username} / {login.password}" for login in logins if login.password is not None]
        if hidden:
            shown.append(", ".join(hidden) + " (password as set in SANDBOX_ACCOUNTS, not printed)")
        login_text = "\n          ".join(shown) or "the accounts of SANDBOX_ACCOUNTS"
        api_text = f"the embedded Cakemail API sandbox, {stack.sandbox_url} (CAKEMAIL_API_URL=... uses a real API)"
        first = logins[0] if logins else Login("USER", None)
        user, password = first.username, first.password or "PASSWORD"
        sender, recipient = user, "someone@example.net"
    else:
        login_text = "a user of your Cakemail account, with its password"
        api_text = f"{stack.api_url} (CAKEMAIL_API_URL; no sandbox)"
        user, password, sender, recipient = "USER", "PASSWORD", "SENDER", "RECIPIENT"
    cert_file = stack.edge.env["TLS_CERT_FILE"]
    if cert_file == str(stack.certificate.cert_file):
        tls_text = f"dev CA {stack.certificate.ca_file.resolve()} (or skip verification: the certificate is self-made)"
    else:
        tls_text = f"{cert_file} (TLS_CERT_FILE)"
    lines = [
        "",
        "Cakemail SMTP Gateway is running (Ctrl-C stops it).",
        "",
        f"  SMTP    {starttls} (STARTTLS)   {implicit} (implicit TLS)   greets as {hostname}",
        f"  login   {login_text}",
        f"  TLS     {tls_text}",
        f"  API     {api_text}",
        "",
        "Send a test message:",
        f"  swaks --server {starttls} --tls --auth-user '{user}' --auth-password '{password}' \\",
        f"        --from '{sender}' --to '{recipient}'",
        f"  python -c \"import smtplib,ssl; s=smtplib.SMTP('{stack.smtp_host}',{ports.smtp_starttls}); \\",
        f"s.starttls(context=ssl._create_unverified_context()); s.login('{user}','{password}'); \\",
        f"s.sendmail('{sender}',['{recipient}'],'Subject: hi\\r\\n\\r\\nhello'); s.quit()\"",
        "",
    ]
    if stack.has_sandbox:
        lines.append(f"See what was sent (inbox):   {stack.sandbox_url}/   (web inbox: live list, bodies, faults)")
        lines.append(f"The same as JSON:            curl -s '{stack.sandbox_url}/sandbox/emails?content=0'")
    lines += [
        f"Health and metrics:          {stack.edge_http_url}/health/ready  {stack.edge_http_url}/metrics",
        f"                             {stack.forwarder_http_url}/health/ready  {stack.forwarder_http_url}/metrics",
        "",
    ]
    return "\n".join(lines)
