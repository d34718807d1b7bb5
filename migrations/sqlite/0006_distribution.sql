-- Content app lookups: a content artifact by relative path (a version's file), and base path
-- prefix searches (the UNIQUE index on distributions.base_path already serves equality).
CREATE INDEX content_artifacts_path_idx ON content_artifacts (relative_path);
