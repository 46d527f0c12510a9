"""The ways events come in: an intercom's own event log (2N) and MQTT, each turned into the
events of SPEC section 4."""
