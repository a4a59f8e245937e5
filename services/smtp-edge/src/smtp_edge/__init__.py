"""The SMTP edge: TLS, AUTH, the SMTP dialogue, limits and MIME parsing, in front of the forwarder."""
