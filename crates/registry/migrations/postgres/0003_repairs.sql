-- The log of repairs the RepairController carried out, one row per attempt
-- (`RepairRecord`, src/store/repairs.rs). Rows are only ever inserted.
--
-- `id` comes from a sequence, so ids only grow; "newest" means the highest
-- id, never `at_ms`, so clock steps cannot reorder the log. (Two replicas
-- inserting at the same moment may commit in the other order than their ids;
-- the log orders by when a repair was recorded, which is close enough.)
-- `kind` is the repair's name (e.g. 'restart_failed_components'),
-- `check_name` the health check that asked for it (CHECK is a keyword).
-- `outcome` holds `RepairOutcome`'s serde name ('done' | 'failed'); no CHECK,
-- like `sources`, so an unknown value reads as a corrupt row. `error` says why
-- a repair failed.
CREATE TABLE repairs (
    id         BIGSERIAL PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    node       TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    check_name TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    error      TEXT
);

-- For reading (or pruning) the repairs of a time range.
CREATE INDEX repairs_at_ms ON repairs (at_ms);
