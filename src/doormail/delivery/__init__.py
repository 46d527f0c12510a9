"""Handing finished messages to an SMTP server: one session per connection (TLS, AUTH,
certificates), the classification of what went wrong, and Apply & Test."""
