"""cakemail-gateway send: one message through the gateway's gRPC API, from flags or an .eml on stdin.

Exit codes scripts can branch on (sysexits.h): 0 accepted by Cakemail; 64 bad usage; 65 refused for good (the
message or its sender: do not resend as is); 75 temporary failure (resend later, the same message is delivered
once); 77 credentials invalid or not allowed."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from cakemail_gateway._core import SendResult
from cakemail_gateway.client import GatewayClient, TlsConfig
from cakemail_gateway.errors import GatewayError, InvalidCredentials, PermissionDenied

EXIT_OK = 0
EXIT_USAGE = 64
EXIT_REFUSED = 65
EXIT_TEMPORARY = 75
EXIT_AUTH = 77


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cakemail-gateway", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="send one message (flags build it; without them, an .eml on stdin)")
    env = os.environ.get
    send.add_argument("--server", default=env("CAKEMAIL_GATEWAY_TARGET", "127.0.0.1:50051"), help="gRPC target")
    send.add_argument("--username", default=env("CAKEMAIL_GATEWAY_USERNAME"), help="or CAKEMAIL_GATEWAY_USERNAME")
    send.add_argument("--password", default=env("CAKEMAIL_GATEWAY_PASSWORD"), help="or CAKEMAIL_GATEWAY_PASSWORD")
    send.add_argument(
        "--token",
        default=env("CAKEMAIL_ACCESS_TOKEN"),
        help="a Cakemail access token instead of username and password (or CAKEMAIL_ACCESS_TOKEN)",
    )
    send.add_argument(
        "--account-id",
        default=env("CAKEMAIL_ACCOUNT_ID"),
        help="with --token: the Cakemail account to send for (or CAKEMAIL_ACCOUNT_ID)",
    )
    send.add_argument("--from", dest="sender", required=True, help="the From: and envelope sender")
    send.add_argument("--to", action="append", default=[], help="recipient (repeat)")
    send.add_argument("--cc", action="append", default=[], help="Cc recipient (repeat)")
    send.add_argument("--bcc", action="append", default=[], help="Bcc recipient (repeat; envelope only)")
    send.add_argument("--subject")
    send.add_argument("--text", help="the text/plain body")
    send.add_argument("--text-file", type=Path)
    send.add_argument("--html", help="the text/html body")
    send.add_argument("--html-file", type=Path)
    send.add_argument("--attach", action="append", default=[], type=Path, help="a file to attach (repeat)")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole send, retries included")
    send.add_argument("--ca-file", type=Path, help="TLS: the CA of the forwarder's certificate")
    send.add_argument("--cert-file", type=Path, help="mTLS: this client's certificate chain")
    send.add_argument("--key-file", type=Path, help="mTLS: this client's private key")
    send.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    return parser


def _builds_message(args: argparse.Namespace) -> bool:
    return any(value for value in (args.subject, args.text, args.text_file, args.html, args.html_file, args.attach))


def build_message(args: argparse.Namespace) -> EmailMessage:
    message = EmailMessage()
    message["From"] = args.sender
    if args.to:
        message["To"] = ", ".join(args.to)
    if args.cc:
        message["Cc"] = ", ".join(args.cc)
    message["Subject"] = args.subject or ""
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=args.sender.rpartition("@")[2] or None)
    text = args.text_file.read_text() if args.text_file else args.text
    html = args.html_file.read_text() if args.html_file else args.html
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for path in args.attach:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return message


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    if not (args.ca_file or args.cert_file):
        return None
    return TlsConfig(
        root_certificates=args.ca_file.read_bytes() if args.ca_file else None,
        certificate_chain=args.cert_file.read_bytes() if args.cert_file else None,
        private_key=args.key_file.read_bytes() if args.key_file else None,
    )


def _auth_problem(args: argparse.Namespace) -> str:
    """Why the arguments do not say how to authenticate; "" when they do."""
    if args.token:
        if args.username or args.password:
            return "give --token/--account-id or --username/--password (or their environment variables), not both"
        if not args.account_id:
            return "--token needs --account-id (or CAKEMAIL_ACCOUNT_ID): the Cakemail account to send for"
        return ""
    if not args.username or not args.password:
        return "--username and --password, or --token and --account-id (or their environment variables), are required"
    return ""


def exit_code(error: GatewayError) -> int:
    if isinstance(error, InvalidCredentials | PermissionDenied):
        return EXIT_AUTH
    return EXIT_TEMPORARY if error.retryable else EXIT_REFUSED


def _error_json(error: GatewayError) -> dict[str, Any]:
    details = error.details
    return {
        "ok": False,
        "error": type(error).__name__,
        "code": error.code.name if error.code else None,
        "result": error.result or None,
        "reason": details.reason,
        "message": error.message,
        "retry_after": details.retry_after,
        "field_violations": [{"field": v.field, "description": v.description} for v in details.field_violations],
        "preconditions": [
            {"type": v.type, "subject": v.subject, "description": v.description} for v in details.preconditions
        ],
    }


def _result_json(result: SendResult) -> dict[str, Any]:
    return {
        "ok": True,
        "message_ids": list(result.message_ids),
        "recipients": [
            {"recipient": r.recipient, "result": r.result, "message_id": r.message_id} for r in result.recipients
        ],
        "attempts": result.attempts,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    recipients = [*args.to, *args.cc, *args.bcc]
    problem = _auth_problem(args)
    if problem:
        print(f"cakemail-gateway: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not recipients:
        print("cakemail-gateway: at least one --to, --cc or --bcc is required", file=sys.stderr)
        return EXIT_USAGE
    raw = build_message(args).as_bytes() if _builds_message(args) else sys.stdin.buffer.read()
    if not raw.strip():
        print("cakemail-gateway: no message: give --subject/--text/... or an .eml on stdin", file=sys.stderr)
        return EXIT_USAGE
    try:
        with GatewayClient(
            args.server,
            username="" if args.token else args.username,
            password="" if args.token else args.password,
            token=args.token or "",
            account_id=(args.account_id or "") if args.token else "",
            timeout=args.timeout,
            tls=_tls(args),
        ) as client:
            result = client.send_raw(
                raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), sender=args.sender, recipients=recipients
            )
    except GatewayError as error:
        if args.json:
            print(json.dumps(_error_json(error)))
        else:
            print(
                f"cakemail-gateway: not sent ({type(error).__name__}, {error.reason}): {error.message}", file=sys.stderr
            )
        return exit_code(error)
    if args.json:
        print(json.dumps(_result_json(result)))
    else:
        print("sent: " + " ".join(result.message_ids))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
