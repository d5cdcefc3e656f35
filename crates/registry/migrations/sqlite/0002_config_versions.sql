-- The history of generated collector configs, one row per distinct YAML
-- (`ConfigVersion`, src/store/versions.rs).
--
-- `hash` is the SHA-256 of `yaml` in lowercase hex, so the same bytes are
-- always the same version. `generation` numbers versions in the order they
-- were first recorded (1, 2, …); writers take the database's write lock
-- (BEGIN IMMEDIATE) and assign MAX + 1, so it has no gaps and no duplicates.
-- `status` holds `VersionStatus`'s serde name; no CHECK, like `sources`, so a
-- new status needs no table rebuild and an unknown one reads as corrupt.
-- `failure` and `failed_ms` are set exactly when `status` is 'failed';
-- `applied_ms` is when the version was last applied, and stays once it is
-- superseded or fails.
CREATE TABLE config_versions (
    hash       TEXT    NOT NULL PRIMARY KEY,
    yaml       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    failure    TEXT,
    failed_ms  INTEGER,
    applied_ms INTEGER,
    generation INTEGER NOT NULL
) STRICT;

-- History and "last good" read newest first by generation; unique because a
-- generation names one version.
CREATE UNIQUE INDEX config_versions_generation ON config_versions (generation);

-- At most one version is applied at a time. The store keeps this by
-- superseding the old one in the same transaction; the index makes the
-- database refuse a bug that would break it.
CREATE UNIQUE INDEX config_versions_one_applied ON config_versions (status)
    WHERE status = 'applied';
