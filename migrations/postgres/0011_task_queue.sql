-- The task queue keeps its reservations in rows (see the SQLite 0011 for the design; same
-- tables, columns and indexes). `task_resources` holds one row per resource of every incomplete
-- task, indexed by resource; `tasks.unblocked_at` marks the waiting tasks that may start and
-- `runnable_tasks` lists them for claims.

ALTER TABLE tasks ADD COLUMN unblocked_at timestamptz;
-- The waiting tasks that may start, oldest first: what a claim reads, and nothing else.
CREATE TABLE runnable_tasks (
    task_id      uuid PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    pulp_created timestamptz NOT NULL
);
CREATE INDEX runnable_tasks_order_idx ON runnable_tasks (pulp_created, task_id);

CREATE TABLE task_resources (
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    resource     text NOT NULL,
    exclusive    boolean NOT NULL,
    pulp_created timestamptz NOT NULL,
    PRIMARY KEY (task_id, resource)
);
CREATE INDEX task_resources_queue_idx ON task_resources (resource, pulp_created, task_id);
CREATE INDEX task_resources_hold_idx ON task_resources (resource, exclusive, pulp_created, task_id);

INSERT INTO task_resources (task_id, resource, exclusive, pulp_created)
    SELECT t.id, r.value, true, t.pulp_created
    FROM tasks t, jsonb_array_elements_text(t.exclusive_resources) r(value)
    WHERE t.state IN ('waiting', 'running', 'canceling')
    ON CONFLICT DO NOTHING;
INSERT INTO task_resources (task_id, resource, exclusive, pulp_created)
    SELECT t.id, r.value, false, t.pulp_created
    FROM tasks t, jsonb_array_elements_text(t.shared_resources) r(value)
    WHERE t.state IN ('waiting', 'running', 'canceling')
    ON CONFLICT DO NOTHING;
