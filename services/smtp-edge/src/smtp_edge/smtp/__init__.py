"""The SMTP dialogue: aiosmtpd protocol and handler objects, one small class per concern."""
