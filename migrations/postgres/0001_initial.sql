-- pulp-rs initial schema, PostgreSQL flavour.

CREATE TABLE remotes (
    id                   uuid PRIMARY KEY,
    pulp_type            text NOT NULL,
    name                 text NOT NULL UNIQUE,
    url                  text NOT NULL,
    policy               text NOT NULL,
    download_concurrency bigint,
    max_retries          bigint,
    username             text,
    password             text,
    proxy_url            text,
    proxy_username       text,
    proxy_password       text,
    ca_cert              text,
    client_cert          text,
    client_key           text,
    tls_validation       boolean NOT NULL,
    headers              jsonb NOT NULL DEFAULT '[]'::jsonb,
    connect_timeout      double precision,
    sock_read_timeout    double precision,
    total_timeout        double precision,
    rate_limit           bigint,
    pulp_created         timestamptz NOT NULL,
    pulp_last_updated    timestamptz NOT NULL
);

CREATE TABLE repositories (
    id                uuid PRIMARY KEY,
    pulp_type         text NOT NULL,
    name              text NOT NULL UNIQUE,
    description       text,
    next_version      bigint NOT NULL DEFAULT 1,
    remote_id         uuid REFERENCES remotes (id) ON DELETE SET NULL,
    pulp_created      timestamptz NOT NULL,
    pulp_last_updated timestamptz NOT NULL
);
CREATE INDEX repositories_remote_idx ON repositories (remote_id);

CREATE TABLE repository_versions (
    id            uuid PRIMARY KEY,
    repository_id uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number        bigint NOT NULL,
    complete      boolean NOT NULL DEFAULT false,
    added         bigint NOT NULL DEFAULT 0,
    removed       bigint NOT NULL DEFAULT 0,
    present       bigint NOT NULL DEFAULT 0,
    pulp_created  timestamptz NOT NULL,
    UNIQUE (repository_id, number)
);

CREATE TABLE content (
    id                    uuid PRIMARY KEY,
    pulp_type             text NOT NULL,
    natural_key           text NOT NULL,
    repo_key              text NOT NULL,
    data                  jsonb NOT NULL,
    pulp_created          timestamptz NOT NULL,
    timestamp_of_interest timestamptz NOT NULL,
    UNIQUE (pulp_type, natural_key)
);
CREATE INDEX content_repo_key_idx ON content (pulp_type, repo_key);

CREATE TABLE artifacts (
    id                    uuid PRIMARY KEY,
    sha256                text NOT NULL UNIQUE,
    size                  bigint NOT NULL,
    sha224                text,
    sha384                text,
    sha512                text,
    file                  text NOT NULL,
    pulp_created          timestamptz NOT NULL,
    timestamp_of_interest timestamptz NOT NULL
);

CREATE TABLE content_artifacts (
    id            uuid PRIMARY KEY,
    content_id    uuid NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    artifact_id   uuid REFERENCES artifacts (id),
    relative_path text NOT NULL,
    UNIQUE (content_id, relative_path)
);
CREATE INDEX content_artifacts_artifact_idx ON content_artifacts (artifact_id);

CREATE TABLE remote_artifacts (
    id                  uuid PRIMARY KEY,
    content_artifact_id uuid NOT NULL REFERENCES content_artifacts (id) ON DELETE CASCADE,
    remote_id           uuid NOT NULL REFERENCES remotes (id) ON DELETE CASCADE,
    url                 text NOT NULL,
    size                bigint,
    sha256              text,
    sha224              text,
    sha384              text,
    sha512              text,
    UNIQUE (content_artifact_id, remote_id)
);
CREATE INDEX remote_artifacts_remote_idx ON remote_artifacts (remote_id);

-- Membership: a unit is in version N of its repository iff
-- version_added.number <= N and (version_removed IS NULL or version_removed.number > N).
CREATE TABLE repository_content (
    id                 uuid PRIMARY KEY,
    repository_id      uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    content_id         uuid NOT NULL REFERENCES content (id),
    version_added_id   uuid NOT NULL REFERENCES repository_versions (id) ON DELETE CASCADE,
    version_removed_id uuid REFERENCES repository_versions (id)
);
-- At most one open row per (repository, unit); "open rows of R" is a range of this index.
CREATE UNIQUE INDEX repository_content_open_idx
    ON repository_content (repository_id, content_id) WHERE version_removed_id IS NULL;
CREATE INDEX repository_content_repo_idx ON repository_content (repository_id, content_id);
CREATE INDEX repository_content_added_idx ON repository_content (version_added_id);
CREATE INDEX repository_content_removed_idx
    ON repository_content (version_removed_id) WHERE version_removed_id IS NOT NULL;
CREATE INDEX repository_content_content_idx ON repository_content (content_id);
