-- Schema parity with SQLite (tests/schema_parity.rs): SQLite's 0007 adds the base path prefix
-- index PostgreSQL got in 0006 (`distributions_base_path_pattern_idx`). Nothing to do here; the
-- migration exists so both backends keep the same migration numbers.
SELECT 1;
