"""The deciding side: events and orders in, finished messages committed. Every way in goes the
same way: `intake` decides (the rules, on a read snapshot of settings, users and call memory),
`snapshots` takes the pictures (no transaction open), `prepare` renders and composes the
messages (in a worker thread), and `commit` writes the event, its call memory and its outbox
rows in the only write transaction of this side, grouped with the others waiting."""
