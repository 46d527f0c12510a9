"""The ways events and orders come in, each a thin adapter that turns what arrives into the
events of SPEC section 4 (or a Send E-Mail order) and hands it to the intake: the body of
`POST /api/events`, the `doormail event` command line, the two forms of Send E-Mail, and an
intercom's own event log (2N)."""
