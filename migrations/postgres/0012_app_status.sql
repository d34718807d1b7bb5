-- The API and content app processes' heartbeats (pulpcore's AppStatus for app_type api and
-- content; workers keep their own table, which tasking reaps): `status/` lists those whose last
-- heartbeat is within their kind's TTL. A process deletes its row when it stops cleanly.
CREATE TABLE app_statuses (
    app_type       text NOT NULL,
    name           text NOT NULL,
    last_heartbeat timestamptz NOT NULL,
    started_at     timestamptz NOT NULL,
    PRIMARY KEY (app_type, name)
);
