"""The devices of SPEC 11: several intercoms, each with its name, serial, camera, licenses, time
zone and event source (`model`), stored in the `devices` table (`store`); an event's `device`
selects one, and the settings it is decided under are the shared ones with that device's
identity put in (`model.settings_for`)."""
