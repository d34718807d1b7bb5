-- Chunked uploads (pulpcore's `Upload` / `UploadChunk`): the upload's declared size and each
-- chunk received (its bytes live in the artifact storage, `upload/<upload id>/<chunk id>`).
-- `pulp_last_updated` moves with every chunk: orphan cleanup removes uploads untouched for
-- longer than its protection time.
CREATE TABLE uploads (
    id                uuid PRIMARY KEY,
    size              bigint NOT NULL,
    pulp_created      timestamptz NOT NULL,
    pulp_last_updated timestamptz NOT NULL
);
CREATE INDEX uploads_last_updated_idx ON uploads (pulp_last_updated);

CREATE TABLE upload_chunks (
    id           uuid PRIMARY KEY,
    upload_id    uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    start_byte   bigint NOT NULL,
    size         bigint NOT NULL,
    pulp_created timestamptz NOT NULL
);
CREATE INDEX upload_chunks_upload_idx ON upload_chunks (upload_id, start_byte);
