"""Email transports: SMTP (with STARTTLS, SSL, AUTH and DKIM), a capture folder, and a small
SMTP capture server for the demo and the tests."""
