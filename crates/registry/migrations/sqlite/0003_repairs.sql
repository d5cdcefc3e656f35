-- The log of repairs the RepairController carried out, one row per attempt
-- (`RepairRecord`, src/store/repairs.rs). Rows are only ever inserted.
--
-- `id` is AUTOINCREMENT so ids only grow, even after old rows are deleted
-- (plain rowids would reuse the largest after it is deleted); "newest" means
-- the highest id, never `at_ms`, so clock steps cannot reorder the log.
-- `kind` is the repair's name (e.g. 'restart_failed_components'),
-- `check_name` the health check that asked for it (CHECK is a keyword).
-- `outcome` holds `RepairOutcome`'s serde name ('done' | 'failed'); no CHECK,
-- like `sources`, so an unknown value reads as a corrupt row. `error` says why
-- a repair failed.
CREATE TABLE repairs (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    node       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    check_name TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    error      TEXT
) STRICT;

-- For reading (or pruning) the repairs of a time range.
CREATE INDEX repairs_at_ms ON repairs (at_ms);
