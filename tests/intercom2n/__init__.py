"""An emulated 2N IP intercom (its HTTP API: system, event log, camera) for the tests of the 2N
event source."""
