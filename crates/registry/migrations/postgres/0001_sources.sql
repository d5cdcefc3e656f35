-- The registry's log sources, one row per `LogSource` (src/model.rs).
--
-- `id` sorts with the "C" collation so `ORDER BY id` is byte order, the order
-- of `SourceId` in Rust and of the SQLite store, whatever the database's locale.
-- `origin` and `state` hold the enums' serde names; `labels` is a JSON object
-- of string to string. The drain columns are all NULL unless the source is a
-- tombstone (`drain_last_size` may stay NULL before the first look at the file).
-- No CHECKs on the enum columns: the store reports an unknown value as a
-- corrupt row, and a new origin then needs no constraint change.
CREATE TABLE sources (
    id                   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    origin               TEXT   NOT NULL,
    path                 TEXT   NOT NULL,
    labels               JSONB  NOT NULL,
    state                TEXT   NOT NULL,
    first_seen_ms        BIGINT NOT NULL,
    updated_ms           BIGINT NOT NULL,
    drain_since_ms       BIGINT,
    drain_last_size      BIGINT,
    drain_last_growth_ms BIGINT
);
