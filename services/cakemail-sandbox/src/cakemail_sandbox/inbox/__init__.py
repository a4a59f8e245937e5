"""The sandbox's web inbox: what the gateway sent, as Mailpit or Mailtrap would show it (docs/sandbox-inbox.md)."""
