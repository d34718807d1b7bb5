-- The content app's resolution cache (src/content/cache.rs) and on-demand fetch leases
-- (src/content/ondemand.rs).
--
-- content_generation: one row whose counter every write that can change what a content path
-- resolves to bumps, by trigger, in the writer's own transaction: a distribution created,
-- changed or deleted; a publication created, completed or deleted; a repository version
-- completed (or its counts changed) or deleted; a repository deleted. Content processes read it
-- in one cheap query and drop their cache when it moved. Not bumped: inserting an incomplete
-- version (invisible), linking an artifact to a content artifact (the content app does not
-- cache files without an artifact, and a link is never undone).
CREATE TABLE content_generation (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO content_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER content_gen_distributions_insert AFTER INSERT ON distributions
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_distributions_update AFTER UPDATE ON distributions
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_distributions_delete AFTER DELETE ON distributions
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_publications_insert AFTER INSERT ON publications
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_publications_update AFTER UPDATE ON publications
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_publications_delete AFTER DELETE ON publications
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_versions_update AFTER UPDATE ON repository_versions
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_versions_delete AFTER DELETE ON repository_versions
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER content_gen_repositories_delete AFTER DELETE ON repositories
BEGIN UPDATE content_generation SET generation = generation + 1 WHERE id = 1; END;

-- One upstream fetch per content artifact across every content process: the holder fetches
-- until expires_at (renewed while it runs) and deletes the row when done or failed.
CREATE TABLE content_fetch_leases (
    content_artifact_id TEXT PRIMARY KEY NOT NULL
        REFERENCES content_artifacts (id) ON DELETE CASCADE,
    holder              TEXT NOT NULL,
    expires_at          INTEGER NOT NULL
);
