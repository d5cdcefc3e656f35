-- The reconcile loop's durable history (src/store/workflow.rs): one row per
-- cycle and one per activity attempt. The embedded workflow engine resumes an
-- unfinished cycle from these rows after a crash, replaying the completed
-- activities' recorded results instead of running them again.
--
-- `status` of a cycle: 'running' | 'done' | 'failed'; of a step: 'running' |
-- 'completed' | 'failed'. `result` is the activity's output as JSON, kept
-- only for completed steps; `input_hash` is the SHA-256 of the input's JSON,
-- so a replay can tell that the same activity got the same input.
CREATE TABLE workflow_cycles (
    id          BIGSERIAL PRIMARY KEY,
    node        TEXT    NOT NULL,
    engine      TEXT    NOT NULL,
    trigger     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_ms  BIGINT  NOT NULL,
    finished_ms BIGINT,
    outcome     TEXT
);

CREATE INDEX workflow_cycles_open ON workflow_cycles (node, engine, status);

CREATE TABLE workflow_steps (
    id          BIGSERIAL PRIMARY KEY,
    cycle_id    BIGINT  NOT NULL REFERENCES workflow_cycles (id),
    seq         BIGINT  NOT NULL,
    activity    TEXT    NOT NULL,
    attempt     BIGINT  NOT NULL,
    input_hash  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    result      TEXT,
    error       TEXT,
    started_ms  BIGINT  NOT NULL,
    duration_ms BIGINT
);

CREATE INDEX workflow_steps_cycle ON workflow_steps (cycle_id, seq, attempt);
