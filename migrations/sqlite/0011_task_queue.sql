-- The task queue keeps its reservations in rows (tests/schema_parity.rs: same tables, columns and
-- indexes as PostgreSQL's 0011). `task_resources` holds one row per resource of every incomplete
-- task (deleted when the task ends), indexed by resource, so whether a task may start is decided
-- from the few tasks that share its resources. `tasks.unblocked_at` (pulpcore's) marks the
-- waiting tasks that may start; a claim reads only those, from a partial index.

ALTER TABLE tasks ADD COLUMN unblocked_at INTEGER;
CREATE INDEX tasks_runnable_idx ON tasks (pulp_created, id) WHERE state = 'waiting' AND unblocked_at IS NOT NULL;

CREATE TABLE task_resources (
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    resource     TEXT NOT NULL,
    exclusive    INTEGER NOT NULL,
    pulp_created INTEGER NOT NULL,
    PRIMARY KEY (task_id, resource)
);
CREATE INDEX task_resources_queue_idx ON task_resources (resource, pulp_created, task_id);
CREATE INDEX task_resources_hold_idx ON task_resources (resource, exclusive, pulp_created, task_id);

-- Tasks left incomplete by an older version: their reservations as rows (exclusive first: a
-- resource held both ways is held exclusively). Startup recovery then marks the runnable ones.
INSERT OR IGNORE INTO task_resources (task_id, resource, exclusive, pulp_created)
    SELECT t.id, r.value, 1, t.pulp_created FROM tasks t, json_each(t.exclusive_resources) r
    WHERE t.state IN ('waiting', 'running', 'canceling');
INSERT OR IGNORE INTO task_resources (task_id, resource, exclusive, pulp_created)
    SELECT t.id, r.value, 0, t.pulp_created FROM tasks t, json_each(t.shared_resources) r
    WHERE t.state IN ('waiting', 'running', 'canceling');
