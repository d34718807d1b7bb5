-- pulp-rs tasking schema, PostgreSQL flavour. Reservations are not stored separately: they are
-- derived from the resource lists of the incomplete tasks.

CREATE TABLE tasks (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL,
    state               text NOT NULL,
    args                jsonb NOT NULL DEFAULT 'null'::jsonb,
    logging_cid         text NOT NULL DEFAULT '',
    pulp_created        timestamptz NOT NULL,
    started_at          timestamptz,
    finished_at         timestamptz,
    error               jsonb,
    progress_reports    jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_resources   jsonb NOT NULL DEFAULT '[]'::jsonb,
    exclusive_resources jsonb NOT NULL DEFAULT '[]'::jsonb,
    shared_resources    jsonb NOT NULL DEFAULT '[]'::jsonb,
    worker              text,
    pulp_last_updated   timestamptz NOT NULL
);
CREATE INDEX tasks_state_created_idx ON tasks (state, pulp_created);
CREATE INDEX tasks_created_idx ON tasks (pulp_created);

CREATE TABLE workers (
    name           text PRIMARY KEY,
    last_heartbeat timestamptz NOT NULL,
    started_at     timestamptz NOT NULL
);
