-- pulp-rs tasking schema, SQLite flavour (same conventions as 0001: TEXT uuids, INTEGER
-- microseconds, TEXT JSON). Reservations are not stored separately: they are derived from the
-- resource lists of the incomplete tasks.

CREATE TABLE tasks (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    state               TEXT NOT NULL,
    args                TEXT NOT NULL DEFAULT 'null',
    logging_cid         TEXT NOT NULL DEFAULT '',
    pulp_created        INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    error               TEXT,
    progress_reports    TEXT NOT NULL DEFAULT '[]',
    created_resources   TEXT NOT NULL DEFAULT '[]',
    exclusive_resources TEXT NOT NULL DEFAULT '[]',
    shared_resources    TEXT NOT NULL DEFAULT '[]',
    worker              TEXT,
    pulp_last_updated   INTEGER NOT NULL
);
CREATE INDEX tasks_state_created_idx ON tasks (state, pulp_created);
CREATE INDEX tasks_created_idx ON tasks (pulp_created);

CREATE TABLE workers (
    name           TEXT PRIMARY KEY NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    started_at     INTEGER NOT NULL
);
