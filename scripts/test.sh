#!/usr/bin/env bash
# Runs every check and test of pulp-rs on this machine: fmt, clippy, then the whole test suite,
# on SQLite and, when PostgreSQL answers at 127.0.0.1:5432 (user postgres, trust auth) or
# PULP_TEST_DATABASE_URL is set, on PostgreSQL too (each test makes its own fresh database).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulp-rs-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ -z "${PULP_TEST_DATABASE_URL:-}" ]; then
  # Start the local cluster if it is installed and down, then use it if it answers.
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
      for _ in $(seq 1 20); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 0.5; done
    fi
  fi
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    export PULP_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  fi
fi
if [ -n "${PULP_TEST_DATABASE_URL:-}" ]; then
  echo "PostgreSQL runs enabled"
  # Drop the databases earlier test runs made (each test makes a fresh one).
  if command -v psql >/dev/null 2>&1; then
    psql "$PULP_TEST_DATABASE_URL" -Atqc \
      "SELECT datname FROM pg_database WHERE datname LIKE 'pulp_test_%' OR datname LIKE 'pulp_bench_%'" \
      | while read -r db; do psql "$PULP_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null || true; done
  fi
else
  echo "PULP_TEST_DATABASE_URL unset and no PostgreSQL at 127.0.0.1:5432: SQLite only"
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
# The benches compile above; running them is `cargo bench`, never part of the tests.
