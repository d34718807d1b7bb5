-- Chunked uploads (pulpcore's `Upload` / `UploadChunk`): the upload's declared size and each
-- chunk received (its bytes live in the artifact storage, `upload/<upload id>/<chunk id>`).
-- `pulp_last_updated` moves with every chunk: orphan cleanup removes uploads untouched for
-- longer than its protection time.
CREATE TABLE uploads (
    id                TEXT PRIMARY KEY NOT NULL,
    size              INTEGER NOT NULL,
    pulp_created      INTEGER NOT NULL,
    pulp_last_updated INTEGER NOT NULL
);
CREATE INDEX uploads_last_updated_idx ON uploads (pulp_last_updated);

CREATE TABLE upload_chunks (
    id           TEXT PRIMARY KEY NOT NULL,
    upload_id    TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    start_byte   INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    pulp_created INTEGER NOT NULL
);
CREATE INDEX upload_chunks_upload_idx ON upload_chunks (upload_id, start_byte);
