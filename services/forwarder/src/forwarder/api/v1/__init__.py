"""The v1 flavor: the design document's contract (POST /v1/auth/validate, POST /v1/emails with to/cc/bcc)."""
