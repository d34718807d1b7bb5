-- The content app's resolution cache (src/content/cache.rs) and on-demand fetch leases
-- (src/content/ondemand.rs).
--
-- content_generation: one row whose counter every write that can change what a content path
-- resolves to bumps, by a statement trigger, in the writer's own transaction: a distribution
-- created, changed or deleted; a publication created, completed or deleted; a repository version
-- completed (or its counts changed) or deleted; a repository deleted. Content processes read it
-- in one cheap query and drop their cache when it moved. Not bumped: inserting an incomplete
-- version (invisible, and a sync's long transaction would hold the row), linking an artifact to
-- a content artifact (the content app does not cache files without an artifact, and a link is
-- never undone).
CREATE TABLE content_generation (
    id         integer PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
);
INSERT INTO content_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION content_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE content_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER content_gen_distributions AFTER INSERT OR UPDATE OR DELETE ON distributions
    FOR EACH STATEMENT EXECUTE FUNCTION content_generation_bump();
CREATE TRIGGER content_gen_publications AFTER INSERT OR UPDATE OR DELETE ON publications
    FOR EACH STATEMENT EXECUTE FUNCTION content_generation_bump();
CREATE TRIGGER content_gen_versions AFTER UPDATE OR DELETE ON repository_versions
    FOR EACH STATEMENT EXECUTE FUNCTION content_generation_bump();
CREATE TRIGGER content_gen_repositories AFTER DELETE ON repositories
    FOR EACH STATEMENT EXECUTE FUNCTION content_generation_bump();

-- One upstream fetch per content artifact across every content process: the holder fetches
-- until expires_at (renewed while it runs) and deletes the row when done or failed.
CREATE TABLE content_fetch_leases (
    content_artifact_id uuid PRIMARY KEY REFERENCES content_artifacts (id) ON DELETE CASCADE,
    holder              text NOT NULL,
    expires_at          timestamptz NOT NULL
);
