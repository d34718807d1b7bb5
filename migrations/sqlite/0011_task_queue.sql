-- The task queue keeps its reservations in rows (tests/schema_parity.rs: same tables, columns and
-- indexes as PostgreSQL's 0011). `task_resources` holds one row per resource of every incomplete
-- task (deleted when the task ends), indexed by resource, so whether a task may start is decided
-- from the few tasks that share its resources. `tasks.unblocked_at` (pulpcore's) marks the
-- waiting tasks that may start; `runnable_tasks` holds them, and a claim reads only that table.

ALTER TABLE tasks ADD COLUMN unblocked_at INTEGER;
-- The waiting tasks that may start, oldest first: what a claim reads, and nothing else.
CREATE TABLE runnable_tasks (
    task_id      TEXT PRIMARY KEY NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    pulp_created INTEGER NOT NULL
);
CREATE INDEX runnable_tasks_order_idx ON runnable_tasks (pulp_created, task_id);

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
