-- Schema parity with PostgreSQL (tests/schema_parity.rs): the base path prefix index that
-- PostgreSQL got in 0006. SQLite's LIKE is case-insensitive, so its LIKE optimization serves
-- `base_path LIKE 'prefix%'` (`base_paths_under`) from a NOCASE index only; the UNIQUE index
-- (BINARY) keeps serving equality.
CREATE INDEX distributions_base_path_pattern_idx ON distributions (base_path COLLATE NOCASE);
