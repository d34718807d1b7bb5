-- pulp-rs server schema (REST API and content app), PostgreSQL flavour: labels and plugin
-- fields, publications, distributions and API users.

ALTER TABLE remotes ADD COLUMN pulp_labels jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE remotes ADD COLUMN sock_connect_timeout double precision;

ALTER TABLE repositories ADD COLUMN pulp_labels jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE repositories ADD COLUMN retain_repo_versions bigint;
-- The plugin's own repository fields (e.g. file: manifest, autopublish), as a JSON object.
ALTER TABLE repositories ADD COLUMN plugin_data jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE publications (
    id                    uuid PRIMARY KEY,
    pulp_type             text NOT NULL,
    repository_version_id uuid NOT NULL REFERENCES repository_versions (id) ON DELETE CASCADE,
    complete              boolean NOT NULL DEFAULT false,
    -- Serve every content artifact of the version too, not only the published files.
    pass_through          boolean NOT NULL DEFAULT false,
    -- The plugin's own publication fields (e.g. file: manifest), as a JSON object.
    plugin_data           jsonb NOT NULL DEFAULT '{}'::jsonb,
    pulp_created          timestamptz NOT NULL,
    pulp_last_updated     timestamptz NOT NULL
);
CREATE INDEX publications_version_idx ON publications (repository_version_id);

-- What a publication serves beyond pass-through: a content artifact or a metadata artifact at a
-- path (exactly one of the two is set).
CREATE TABLE published_files (
    id                  uuid PRIMARY KEY,
    publication_id      uuid NOT NULL REFERENCES publications (id) ON DELETE CASCADE,
    relative_path       text NOT NULL,
    content_artifact_id uuid REFERENCES content_artifacts (id) ON DELETE CASCADE,
    artifact_id         uuid REFERENCES artifacts (id),
    UNIQUE (publication_id, relative_path)
);
CREATE INDEX published_files_artifact_idx ON published_files (artifact_id);

CREATE TABLE distributions (
    id                    uuid PRIMARY KEY,
    pulp_type             text NOT NULL,
    name                  text NOT NULL UNIQUE,
    base_path             text NOT NULL UNIQUE,
    repository_id         uuid REFERENCES repositories (id) ON DELETE SET NULL,
    repository_version_id uuid REFERENCES repository_versions (id) ON DELETE SET NULL,
    publication_id        uuid REFERENCES publications (id) ON DELETE SET NULL,
    hidden                boolean NOT NULL DEFAULT false,
    pulp_labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
    pulp_created          timestamptz NOT NULL,
    pulp_last_updated     timestamptz NOT NULL
);

CREATE TABLE users (
    username      text PRIMARY KEY,
    -- PHC string (argon2id).
    password_hash text NOT NULL,
    pulp_created  timestamptz NOT NULL
);
