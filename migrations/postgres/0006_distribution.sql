-- Content app lookups: a content artifact by relative path (a version's file), and base path
-- prefix searches (text_pattern_ops serves `LIKE 'prefix%'`; the UNIQUE index serves equality).
CREATE INDEX content_artifacts_path_idx ON content_artifacts (relative_path);
CREATE INDEX distributions_base_path_pattern_idx ON distributions (base_path text_pattern_ops);
