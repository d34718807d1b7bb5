#!/usr/bin/env bash
# End-to-end test with the real client: pulp-cli (PyPI `pulp-cli` + `pulp-glue`, pinned below)
# drives `pulp-rs serve` through the file workflow and every answer is checked.
#
# usage: scripts/pulp-cli-e2e.sh [PATH_TO_PULP_RS_BINARY]
#   PULP_RS_BIN           the binary (else $1, else target/debug/pulp-rs)
#   PULP_RS_DATABASE_URL  run the server on this (PostgreSQL) database instead of SQLite
#   PULP_CLI_VENV         the virtualenv to create or reuse (default ~/.cache/pulp-rs/pulp-cli-<v>)
#
# It starts, on free loopback ports in a temporary directory: a fixture HTTP server serving a
# copy of fixtures/basic (and the same files under /slow/, answered only after two minutes, so a
# sync from there stays running until canceled), and `pulp-rs serve` with
# PULP_ADMIN_PASSWORD set. Everything it started is stopped on exit. Exit status 0 = passed.
set -euo pipefail

PULP_CLI_VERSION=0.41.1
PULP_GLUE_VERSION=0.41.1

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PULP_RS_BIN:-${1:-$ROOT/target/debug/pulp-rs}}"
[ -x "$BIN" ] || { echo "pulp-rs binary not found: $BIN" >&2; exit 2; }
VENV="${PULP_CLI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pulp-rs/pulp-cli-$PULP_CLI_VERSION}"

# ---- the client ------------------------------------------------------------------------------
ensure_venv() {
  local have
  have="$("$VENV/bin/pulp" --version 2>/dev/null || true)"
  case "$have" in *"Version $PULP_CLI_VERSION"*) return ;; esac
  echo "== creating the pulp-cli virtualenv in $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "pulp-cli==$PULP_CLI_VERSION" "pulp-glue==$PULP_GLUE_VERSION"
}
if command -v flock >/dev/null 2>&1; then
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  ensure_venv
  flock -u 9
else
  ensure_venv
fi

# ---- the servers -----------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pulp-cli-e2e.XXXXXX")"
SERVER_PID=""
FIXTURE_PID=""
# Stops one process this script started: TERM, then KILL after 15 s.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID"; fi
  if [ -n "$FIXTURE_PID" ]; then stop_pid "$FIXTURE_PID"; fi
  if [ "$rc" = 0 ] && [ -z "${PULP_CLI_E2E_KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
  return "$rc"
}
trap cleanup EXIT

# Waits until `pattern` (an extended regex with one group) appears in `file`; prints the group.
wait_for_line() {
  local file=$1 pattern=$2 what=$3 i
  for i in $(seq 1 300); do
    if [ -f "$file" ]; then
      local m
      m="$(sed -nE "s#${pattern}#\\1#p" "$file" | head -1)"
      if [ -n "$m" ]; then echo "$m"; return; fi
    fi
    sleep 0.1
  done
  echo "FAIL: $what did not start; its output:" >&2
  cat "$file" >&2 || true
  exit 1
}

mkdir -p "$WORK/fixtures" "$WORK/data" "$WORK/config" "$WORK/cache"
cp -r "$ROOT/fixtures/basic" "$WORK/fixtures/basic"
python3 -u "$ROOT/scripts/pulp-cli-fixture-server.py" "$WORK/fixtures" 0 120 \
  >"$WORK/fixture.out" 2>"$WORK/fixture.log" &
FIXTURE_PID=$!
FIXTURE_PORT="$(wait_for_line "$WORK/fixture.out" '^PORT ([0-9]+)$' "the fixture server")"
FIXTURE="http://127.0.0.1:$FIXTURE_PORT"
export FIXTURE

PASSWORD="e2e-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
DB_ARGS=()
[ -n "${PULP_RS_DATABASE_URL:-}" ] && DB_ARGS=(--database-url "$PULP_RS_DATABASE_URL")
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Explicit ports (a distribution's base_url names the content app's configured address), picked
# free just before; another process may take one in between, so a failed start is retried.
for attempt in 1 2 3 4 5; do
  API_PORT="$(free_port)"
  CONTENT_PORT="$(free_port)"
  [ "$API_PORT" != "$CONTENT_PORT" ] || continue
  PULP_ADMIN_PASSWORD="$PASSWORD" RUST_LOG="${RUST_LOG:-warn}" \
    "$BIN" --data-dir "$WORK/data" "${DB_ARGS[@]}" serve \
    --api-bind "127.0.0.1:$API_PORT" --content-bind "127.0.0.1:$CONTENT_PORT" --workers 2 \
    >"$WORK/server.out" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    grep -q '^Content app listening on' "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^Content app listening on' "$WORK/server.out" 2>/dev/null && break
  echo "pulp-rs serve did not start (attempt $attempt):" >&2
  cat "$WORK/server.out" "$WORK/server.log" >&2 || true
  stop_pid "$SERVER_PID"
  SERVER_PID=""
done
[ -n "$SERVER_PID" ] || { echo "FAIL: pulp-rs serve did not start" >&2; exit 1; }
API="$(wait_for_line "$WORK/server.out" '^REST API listening on (http://[^/]+)/.*$' "pulp-rs serve")"
echo "== pulp-rs at $API, fixtures at $FIXTURE, work dir $WORK"

# ---- helpers ---------------------------------------------------------------------------------
export XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache"
STEP=""
OUT=""
pulp() { "$VENV/bin/pulp" --base-url "$API" --username admin --password "$PASSWORD" "$@"; }

fail() {
  {
    echo
    echo "FAIL [$STEP]: $*"
    echo "--- last stdout:"; printf '%s\n' "$OUT" | head -c 4000; echo
    echo "--- last stderr (tail):"; tail -c 3000 "$WORK/err" 2>/dev/null; echo
    echo "--- server log (tail):"; tail -n 40 "$WORK/server.log" 2>/dev/null
  } >&2
  exit 1
}
step() { STEP="$*"; echo "== [${SECONDS}s] $STEP"; }
# Runs pulp with the arguments; it must succeed. Its stdout is in $OUT.
run() {
  if ! OUT="$(pulp "$@" 2>"$WORK/err")"; then fail "pulp $* exited non-zero"; fi
}
# Runs pulp with the arguments after the pattern; it must fail with stderr matching the pattern.
fails() {
  local pattern=$1; shift
  if OUT="$(pulp "$@" 2>"$WORK/err")"; then fail "pulp $* succeeded, expected a failure"; fi
  grep -qiE "$pattern" "$WORK/err" || fail "pulp $*: stderr does not match /$pattern/"
}
# Evaluates a Python expression over d = json($OUT) (E = the environment) and prints it.
q() {
  printf '%s' "$OUT" | python3 -c '
import json, os, sys
E = os.environ
d = json.loads(sys.stdin.read())
r = eval(sys.argv[1])
print(r if not isinstance(r, (dict, list)) else json.dumps(r))' "$1" 2>>"$WORK/err" \
    || fail "cannot evaluate $1"
}
# Asserts that the Python expression over d = json($OUT) is true.
check() {
  local r
  r="$(q "$1")"
  [ "$r" = "True" ] || fail "expected: $1 (got $r)"
}
# Fetches a URL; prints the body to the file given.
fetch() {
  python3 - "$1" "$2" <<'EOF' || fail "GET $1 failed"
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    open(sys.argv[2], "wb").write(r.read())
EOF
}
same_bytes() { cmp -s "$1" "$2" || fail "$1 and $2 differ"; }

# ---- the workflow ----------------------------------------------------------------------------
step "status"
run status
check '{"core", "file"} <= {v["component"] for v in d["versions"]}'
run --refresh-api status
check 'isinstance(d["versions"], list)'

step "file remote create/show/list/update"
run file remote create --name e2e-remote --url "$FIXTURE/basic/PULP_MANIFEST" --policy immediate
check 'd["name"] == "e2e-remote" and d["policy"] == "immediate"'
check 'd["url"] == E["FIXTURE"] + "/basic/PULP_MANIFEST"'
check 'd["pulp_href"].startswith("/pulp/api/v3/remotes/file/file/")'
check '"password" not in d or d["password"] is None'
REMOTE_HREF="$(q 'd["pulp_href"]')"; export REMOTE_HREF
run file remote show --name e2e-remote
check 'd["pulp_href"] == E["REMOTE_HREF"]'
run file remote show --href "$REMOTE_HREF"
check 'd["name"] == "e2e-remote"'
run file remote list
check 'E["REMOTE_HREF"] in [r["pulp_href"] for r in d]'
run file remote list --name e2e-remote
check 'len(d) == 1 and d[0]["pulp_href"] == E["REMOTE_HREF"]'
run file remote list --name no-such-remote
check 'd == []'
run file remote update --name e2e-remote --download-concurrency 3 --policy on_demand
run file remote show --name e2e-remote
check 'd["download_concurrency"] == 3 and d["policy"] == "on_demand"'
run file remote update --name e2e-remote --policy immediate
run file remote show --name e2e-remote
check 'd["policy"] == "immediate"'

step "file repository create/show/list/update"
run file repository create --name e2e-repo --remote e2e-remote --description first
check 'd["name"] == "e2e-repo" and d["remote"] == E["REMOTE_HREF"] and d["description"] == "first"'
check 'd["latest_version_href"].endswith("/versions/0/")'
REPO_HREF="$(q 'd["pulp_href"]')"; export REPO_HREF
check 'd["versions_href"] == E["REPO_HREF"] + "versions/"'
run file repository show --name e2e-repo
check 'd["pulp_href"] == E["REPO_HREF"]'
run file repository list
check 'E["REPO_HREF"] in [r["pulp_href"] for r in d]'
run file repository list --name-startswith e2e-re --field name --field pulp_href
check 'd == [{"name": "e2e-repo", "pulp_href": E["REPO_HREF"]}]'
run file repository update --name e2e-repo --description second
run file repository show --name e2e-repo
check 'd["description"] == "second" and d["remote"] == E["REMOTE_HREF"]'

step "file repository sync (no --mirror): version 1 with the four files"
run file repository sync --name e2e-repo
run file repository show --name e2e-repo
check 'd["latest_version_href"] == E["REPO_HREF"] + "versions/1/"'
V1_HREF="$(q 'd["latest_version_href"]')"; export V1_HREF
run file repository version list --repository e2e-repo
check 'sorted(v["number"] for v in d) == [0, 1]'
run file repository version show --repository e2e-repo --version 1
check 'd["pulp_href"] == E["V1_HREF"] and d["number"] == 1'
check 'd["content_summary"]["present"]["file.file"]["count"] == 4'
check 'd["content_summary"]["added"]["file.file"]["count"] == 4'
run file content list --repository-version "$V1_HREF"
EXPECTED_PATHS='["docs/data,v1.csv", "docs/guide.txt", "hello.txt", "random.bin"]'
export EXPECTED_PATHS
check 'sorted(c["relative_path"] for c in d) == json.loads(E["EXPECTED_PATHS"])'
HELLO_SHA="$(sha256sum "$WORK/fixtures/basic/hello.txt" | cut -d' ' -f1)"; export HELLO_SHA
check '[c["sha256"] for c in d if c["relative_path"] == "hello.txt"] == [E["HELLO_SHA"]]'
run file content list --relative-path hello.txt
check 'len(d) >= 1 and all(c["relative_path"] == "hello.txt" for c in d)'
run file content list --repository-version-added "$V1_HREF" --limit 2
check 'len(d) == 2'

step "file publication create/list"
run file publication create --repository e2e-repo
check 'd["repository_version"] == E["V1_HREF"]'
check 'd["pulp_href"].startswith("/pulp/api/v3/publications/file/file/")'
PUB_HREF="$(q 'd["pulp_href"]')"; export PUB_HREF
run file publication list
check 'E["PUB_HREF"] in [p["pulp_href"] for p in d]'
run file publication list --repository e2e-repo
check '[p["pulp_href"] for p in d] == [E["PUB_HREF"]]'

step "file distribution create/show/list/update, serving the fixture bytes"
run file distribution create --name e2e-dist --base-path e2e/basic --repository e2e-repo
check 'd["name"] == "e2e-dist" and d["base_path"] == "e2e/basic" and d["repository"] == E["REPO_HREF"]'
DIST_HREF="$(q 'd["pulp_href"]')"; export DIST_HREF
run file distribution show --name e2e-dist
check 'd["pulp_href"] == E["DIST_HREF"] and d["base_url"].rstrip("/").endswith("/e2e/basic")'
BASE_URL="$(q 'd["base_url"].rstrip("/") + "/"')"
fetch "${BASE_URL}hello.txt" "$WORK/hello.txt"
same_bytes "$WORK/hello.txt" "$WORK/fixtures/basic/hello.txt"
fetch "${BASE_URL}docs/guide.txt" "$WORK/guide.txt"
same_bytes "$WORK/guide.txt" "$WORK/fixtures/basic/docs/guide.txt"
run file distribution list
check 'E["DIST_HREF"] in [x["pulp_href"] for x in d]'
run file distribution list --base-path e2e/basic
check '[x["name"] for x in d] == ["e2e-dist"]'
run file distribution update --name e2e-dist --base-path e2e/updated
run file distribution show --name e2e-dist
check 'd["base_path"] == "e2e/updated" and d["base_url"].rstrip("/").endswith("/e2e/updated")'
BASE_URL="$(q 'd["base_url"].rstrip("/") + "/"')"
fetch "${BASE_URL}random.bin" "$WORK/random.bin"
same_bytes "$WORK/random.bin" "$WORK/fixtures/basic/random.bin"
run file distribution update --name e2e-dist --publication "$PUB_HREF"
run file distribution show --name e2e-dist
check 'd["publication"] == E["PUB_HREF"] and d["repository"] is None'
fetch "${BASE_URL}PULP_MANIFEST" "$WORK/served_manifest"
sort "$WORK/served_manifest" >"$WORK/served_manifest.sorted"
sort "$WORK/fixtures/basic/PULP_MANIFEST" >"$WORK/fixture_manifest.sorted"
same_bytes "$WORK/served_manifest.sorted" "$WORK/fixture_manifest.sorted"

step "generic lists: pulp remote/repository/distribution list"
run remote list --name e2e-remote
check '[r["pulp_href"] for r in d] == [E["REMOTE_HREF"]]'
run repository list --name e2e-repo
check '[r["pulp_href"] for r in d] == [E["REPO_HREF"]]'
run distribution list --name e2e-dist
check '[x["pulp_href"] for x in d] == [E["DIST_HREF"]]'

step "file repository sync --mirror after a line is removed from the manifest"
grep -v '^random.bin,' "$WORK/fixtures/basic/PULP_MANIFEST" >"$WORK/manifest.new"
mv "$WORK/manifest.new" "$WORK/fixtures/basic/PULP_MANIFEST"
# Additive (and with the remote given in the body): nothing is removed.
run file repository sync --name e2e-repo --remote e2e-remote
run file repository version show --repository e2e-repo
check 'd["content_summary"]["present"]["file.file"]["count"] == 4'
run file repository sync --name e2e-repo --mirror
run file repository version show --repository e2e-repo
check 'd["content_summary"]["present"]["file.file"]["count"] == 3'
check 'd["content_summary"]["removed"]["file.file"]["count"] == 1'
MIRROR_HREF="$(q 'd["pulp_href"]')"
run file content list --repository-version "$MIRROR_HREF"
check 'sorted(c["relative_path"] for c in d) == ["docs/data,v1.csv", "docs/guide.txt", "hello.txt"]'
run file content list --repository-version-removed "$MIRROR_HREF"
check '[c["relative_path"] for c in d] == ["random.bin"]'
run file repository version list --repository e2e-repo
check 'len(d) >= 3'

step "uploads: artifact upload (one request, chunked), file content upload, content create, repository content add/remove"
python3 - "$WORK" <<'EOF'
import sys
w = sys.argv[1]
open(w + "/up-small.txt", "wb").write(b"one request\n")
open(w + "/up-chunked.bin", "wb").write(bytes((i * 7 + i // 256) % 256 for i in range(3000)))
open(w + "/up-content.bin", "wb").write(bytes((i * 13 + 5) % 251 for i in range(2500)))
EOF
SMALL_SHA="$(sha256sum "$WORK/up-small.txt" | cut -d' ' -f1)"; export SMALL_SHA
CHUNKED_SHA="$(sha256sum "$WORK/up-chunked.bin" | cut -d' ' -f1)"; export CHUNKED_SHA
CONTENT_SHA="$(sha256sum "$WORK/up-content.bin" | cut -d' ' -f1)"; export CONTENT_SHA
run artifact upload --file "$WORK/up-small.txt"
check 'd["sha256"] == E["SMALL_SHA"] and d["size"] == 12'
run artifact upload --file "$WORK/up-chunked.bin" --chunk-size 1000
check 'd["sha256"] == E["CHUNKED_SHA"] and d["size"] == 3000'
# Known bytes: the client finds the artifact and uploads nothing.
run artifact upload --file "$WORK/up-chunked.bin" --chunk-size 1000
check 'd["sha256"] == E["CHUNKED_SHA"]'
run artifact list --sha256 "$CHUNKED_SHA"
check 'len(d) == 1'
run file content upload --relative-path up/content.bin --file "$WORK/up-content.bin" --chunk-size 1000 --repository e2e-repo
check 'd["relative_path"] == "up/content.bin" and d["sha256"] == E["CONTENT_SHA"]'
run file repository version show --repository e2e-repo
check 'd["content_summary"]["present"]["file.file"]["count"] == 4'
run file content upload --relative-path up/whole.txt --file "$WORK/up-small.txt"
check 'd["relative_path"] == "up/whole.txt" and d["sha256"] == E["SMALL_SHA"]'
run file content create --relative-path up/small.txt --sha256 "$SMALL_SHA"
check 'd["relative_path"] == "up/small.txt" and d["sha256"] == E["SMALL_SHA"]'
run file repository content add --repository e2e-repo --sha256 "$SMALL_SHA" --relative-path up/small.txt
run file repository version show --repository e2e-repo
check 'd["content_summary"]["present"]["file.file"]["count"] == 5'
run file repository content remove --repository e2e-repo --sha256 "$SMALL_SHA" --relative-path up/small.txt
run file repository version show --repository e2e-repo
check 'd["content_summary"]["present"]["file.file"]["count"] == 4'
run file content list --relative-path up/small.txt
check 'len(d) == 1 and d[0]["sha256"] == E["SMALL_SHA"]'
run file content list --sha256 "$CONTENT_SHA"
check '[c["relative_path"] for c in d] == ["up/content.bin"]'

step "task list/show/cancel"
run task list --limit 100
check 'len(d) >= 3 and all(t["state"] == "completed" for t in d)'
TASK_HREF="$(q 'd[0]["pulp_href"]')"; export TASK_HREF
run task list --state completed --limit 1
check 'len(d) == 1'
run task show --href "$TASK_HREF"
check 'd["pulp_href"] == E["TASK_HREF"] and d["state"] == "completed"'
check 'isinstance(d["created_resources"], list)'
fails "cannot be canceled" task cancel --href "$TASK_HREF"

# A sync from /slow/ stays running until canceled.
run file remote create --name e2e-slow --url "$FIXTURE/slow/basic/PULP_MANIFEST"
run file repository create --name e2e-slow-repo --remote e2e-slow
if ! OUT="$(pulp --background file repository sync --name e2e-slow-repo 2>"$WORK/err")"; then
  fail "background sync exited non-zero"
fi
SLOW_TASK="$(sed -nE 's#.*Started background task (/pulp/api/v3/tasks/[^ ]+/).*#\1#p' "$WORK/err" | head -1)"
[ -n "$SLOW_TASK" ] || fail "no task href in the background sync's output"
export SLOW_TASK
STATE=""
for _ in $(seq 1 300); do
  run task show --href "$SLOW_TASK"
  STATE="$(q 'd["state"]')"
  [ "$STATE" = "running" ] && break
  [ "$STATE" = "waiting" ] || fail "the held sync is $STATE, expected waiting or running"
  sleep 0.1
done
[ "$STATE" = "running" ] || fail "the held sync never started running"
run task list --state running
check 'E["SLOW_TASK"] in [t["pulp_href"] for t in d]'
run task cancel --href "$SLOW_TASK"
run task show --href "$SLOW_TASK"
check 'd["state"] == "canceled"'
run file repository show --name e2e-slow-repo
check 'd["latest_version_href"].endswith("/versions/0/")'
fails "cannot be canceled" task cancel --href "$SLOW_TASK"

step "destroy"
run file distribution destroy --name e2e-dist
fails "not find|not found|no .* matches" file distribution show --name e2e-dist
run file repository destroy --name e2e-slow-repo
run file repository destroy --name e2e-repo
fails "not find|not found|no .* matches" file repository show --name e2e-repo
run file repository list
check 'all(r["pulp_href"] != E["REPO_HREF"] for r in d)'
run file remote destroy --name e2e-slow
run file remote destroy --href "$REMOTE_HREF"
run file remote list --name e2e-remote
check 'd == []'
fails "not find|not found|no .* matches" file remote show --href "$REMOTE_HREF"

echo "== [${SECONDS}s] pulp-cli end-to-end: PASSED"
