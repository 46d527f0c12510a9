"""Handing finished messages to an SMTP server: one session per connection (TLS, AUTH,
certificates, PIPELINING), what went wrong and whose it is (`errors`), and the worker that
drains the outbox. It knows nothing about events, rules or how a message was built."""
