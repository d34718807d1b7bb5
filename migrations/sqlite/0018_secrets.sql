-- Secrets at rest (src/secrets.rs): the id of the key the secrets of this database are
-- encrypted with (a digest of the key, never the key). A process whose key has another id
-- refuses to start; `pulp-rs rotate-db-key` changes it in the transaction that re-encrypts.
CREATE TABLE db_encryption (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    key_id TEXT NOT NULL
);
