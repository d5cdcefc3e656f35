-- The registry's log sources, one row per `LogSource` (src/model.rs).
--
-- STRICT so a value of the wrong type is refused instead of silently stored;
-- STRICT allows only INTEGER, not BIGINT, and SQLite's INTEGER is 64-bit.
-- `origin` and `state` hold the enums' serde names; `labels` is a JSON object
-- of string to string. The drain columns are all NULL unless the source is a
-- tombstone (`drain_last_size` may stay NULL before the first look at the file).
-- No CHECKs on the enum columns: a new origin must not need a table rebuild,
-- and the store reports an unknown value as a corrupt row.
CREATE TABLE sources (
    id                   TEXT    NOT NULL PRIMARY KEY,
    origin               TEXT    NOT NULL,
    path                 TEXT    NOT NULL,
    labels               TEXT    NOT NULL,
    state                TEXT    NOT NULL,
    first_seen_ms        INTEGER NOT NULL,
    updated_ms           INTEGER NOT NULL,
    drain_since_ms       INTEGER,
    drain_last_size      INTEGER,
    drain_last_growth_ms INTEGER
) STRICT;
