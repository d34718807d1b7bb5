-- Path prefixes (the content app's directory checks and listings) read as byte ranges with the
-- pattern operators (`~>=~`, `~<~`), which only a text_pattern_ops index serves: the plain
-- index follows the database's collation. The same index serves equality lookups by path.
-- SQLite's path index (BINARY collation) already compares bytes: no SQLite migration.
DROP INDEX content_artifacts_path_idx;
CREATE INDEX content_artifacts_path_idx ON content_artifacts (relative_path text_pattern_ops);
