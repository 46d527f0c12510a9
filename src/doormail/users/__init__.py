"""The users list: `model` (a user and the rules of identifiers, pure), `store` (the list in the
database and the look-ups of an event's number or identifier) and `csv` (the list as CSV)."""
