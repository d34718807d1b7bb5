-- pulp-rs server schema (REST API and content app), SQLite flavour: labels and plugin fields,
-- publications, distributions and API users. Same conventions as 0001.

ALTER TABLE remotes ADD COLUMN pulp_labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE remotes ADD COLUMN sock_connect_timeout REAL;

ALTER TABLE repositories ADD COLUMN pulp_labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE repositories ADD COLUMN retain_repo_versions INTEGER;
-- The plugin's own repository fields (e.g. file: manifest, autopublish), as a JSON object.
ALTER TABLE repositories ADD COLUMN plugin_data TEXT NOT NULL DEFAULT '{}';

CREATE TABLE publications (
    id                    TEXT PRIMARY KEY NOT NULL,
    pulp_type             TEXT NOT NULL,
    repository_version_id TEXT NOT NULL REFERENCES repository_versions (id) ON DELETE CASCADE,
    complete              INTEGER NOT NULL DEFAULT 0,
    -- Serve every content artifact of the version too, not only the published files.
    pass_through          INTEGER NOT NULL DEFAULT 0,
    -- The plugin's own publication fields (e.g. file: manifest), as a JSON object.
    plugin_data           TEXT NOT NULL DEFAULT '{}',
    pulp_created          INTEGER NOT NULL,
    pulp_last_updated     INTEGER NOT NULL
);
CREATE INDEX publications_version_idx ON publications (repository_version_id);

-- What a publication serves beyond pass-through: a content artifact or a metadata artifact at a
-- path (exactly one of the two is set).
CREATE TABLE published_files (
    id                  TEXT PRIMARY KEY NOT NULL,
    publication_id      TEXT NOT NULL REFERENCES publications (id) ON DELETE CASCADE,
    relative_path       TEXT NOT NULL,
    content_artifact_id TEXT REFERENCES content_artifacts (id) ON DELETE CASCADE,
    artifact_id         TEXT REFERENCES artifacts (id),
    UNIQUE (publication_id, relative_path)
);
CREATE INDEX published_files_artifact_idx ON published_files (artifact_id);

CREATE TABLE distributions (
    id                    TEXT PRIMARY KEY NOT NULL,
    pulp_type             TEXT NOT NULL,
    name                  TEXT NOT NULL UNIQUE,
    base_path             TEXT NOT NULL UNIQUE,
    repository_id         TEXT REFERENCES repositories (id) ON DELETE SET NULL,
    repository_version_id TEXT REFERENCES repository_versions (id) ON DELETE SET NULL,
    publication_id        TEXT REFERENCES publications (id) ON DELETE SET NULL,
    hidden                INTEGER NOT NULL DEFAULT 0,
    pulp_labels           TEXT NOT NULL DEFAULT '{}',
    pulp_created          INTEGER NOT NULL,
    pulp_last_updated     INTEGER NOT NULL
);

CREATE TABLE users (
    username      TEXT PRIMARY KEY NOT NULL,
    -- PHC string (argon2id).
    password_hash TEXT NOT NULL,
    pulp_created  INTEGER NOT NULL
);
