-- pulp-rs initial schema, SQLite flavour.
-- Ids are UUIDs as hyphenated TEXT; times are INTEGER microseconds since the Unix epoch (UTC);
-- JSON is TEXT; booleans are INTEGER 0/1.

CREATE TABLE remotes (
    id                   TEXT PRIMARY KEY NOT NULL,
    pulp_type            TEXT NOT NULL,
    name                 TEXT NOT NULL UNIQUE,
    url                  TEXT NOT NULL,
    policy               TEXT NOT NULL,
    download_concurrency INTEGER,
    max_retries          INTEGER,
    username             TEXT,
    password             TEXT,
    proxy_url            TEXT,
    proxy_username       TEXT,
    proxy_password       TEXT,
    ca_cert              TEXT,
    client_cert          TEXT,
    client_key           TEXT,
    tls_validation       INTEGER NOT NULL,
    headers              TEXT NOT NULL DEFAULT '[]',
    connect_timeout      REAL,
    sock_read_timeout    REAL,
    total_timeout        REAL,
    rate_limit           INTEGER,
    pulp_created         INTEGER NOT NULL,
    pulp_last_updated    INTEGER NOT NULL
);

CREATE TABLE repositories (
    id                TEXT PRIMARY KEY NOT NULL,
    pulp_type         TEXT NOT NULL,
    name              TEXT NOT NULL UNIQUE,
    description       TEXT,
    next_version      INTEGER NOT NULL DEFAULT 1,
    remote_id         TEXT REFERENCES remotes (id) ON DELETE SET NULL,
    pulp_created      INTEGER NOT NULL,
    pulp_last_updated INTEGER NOT NULL
);
CREATE INDEX repositories_remote_idx ON repositories (remote_id);

CREATE TABLE repository_versions (
    id            TEXT PRIMARY KEY NOT NULL,
    repository_id TEXT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    complete      INTEGER NOT NULL DEFAULT 0,
    added         INTEGER NOT NULL DEFAULT 0,
    removed       INTEGER NOT NULL DEFAULT 0,
    present       INTEGER NOT NULL DEFAULT 0,
    pulp_created  INTEGER NOT NULL,
    UNIQUE (repository_id, number)
);

CREATE TABLE content (
    id                    TEXT PRIMARY KEY NOT NULL,
    pulp_type             TEXT NOT NULL,
    natural_key           TEXT NOT NULL,
    repo_key              TEXT NOT NULL,
    data                  TEXT NOT NULL,
    pulp_created          INTEGER NOT NULL,
    timestamp_of_interest INTEGER NOT NULL,
    UNIQUE (pulp_type, natural_key)
);
CREATE INDEX content_repo_key_idx ON content (pulp_type, repo_key);

CREATE TABLE artifacts (
    id                    TEXT PRIMARY KEY NOT NULL,
    sha256                TEXT NOT NULL UNIQUE,
    size                  INTEGER NOT NULL,
    sha224                TEXT,
    sha384                TEXT,
    sha512                TEXT,
    file                  TEXT NOT NULL,
    pulp_created          INTEGER NOT NULL,
    timestamp_of_interest INTEGER NOT NULL
);

CREATE TABLE content_artifacts (
    id            TEXT PRIMARY KEY NOT NULL,
    content_id    TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    artifact_id   TEXT REFERENCES artifacts (id),
    relative_path TEXT NOT NULL,
    UNIQUE (content_id, relative_path)
);
CREATE INDEX content_artifacts_artifact_idx ON content_artifacts (artifact_id);

CREATE TABLE remote_artifacts (
    id                  TEXT PRIMARY KEY NOT NULL,
    content_artifact_id TEXT NOT NULL REFERENCES content_artifacts (id) ON DELETE CASCADE,
    remote_id           TEXT NOT NULL REFERENCES remotes (id) ON DELETE CASCADE,
    url                 TEXT NOT NULL,
    size                INTEGER,
    sha256              TEXT,
    sha224              TEXT,
    sha384              TEXT,
    sha512              TEXT,
    UNIQUE (content_artifact_id, remote_id)
);
CREATE INDEX remote_artifacts_remote_idx ON remote_artifacts (remote_id);

-- Membership: a unit is in version N of its repository iff
-- version_added.number <= N and (version_removed IS NULL or version_removed.number > N).
CREATE TABLE repository_content (
    id                 TEXT PRIMARY KEY NOT NULL,
    repository_id      TEXT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    content_id         TEXT NOT NULL REFERENCES content (id),
    version_added_id   TEXT NOT NULL REFERENCES repository_versions (id) ON DELETE CASCADE,
    version_removed_id TEXT REFERENCES repository_versions (id)
);
-- At most one open row per (repository, unit); "open rows of R" is a range of this index.
CREATE UNIQUE INDEX repository_content_open_idx
    ON repository_content (repository_id, content_id) WHERE version_removed_id IS NULL;
CREATE INDEX repository_content_repo_idx ON repository_content (repository_id, content_id);
CREATE INDEX repository_content_added_idx ON repository_content (version_added_id);
CREATE INDEX repository_content_removed_idx
    ON repository_content (version_removed_id) WHERE version_removed_id IS NOT NULL;
CREATE INDEX repository_content_content_idx ON repository_content (content_id);
