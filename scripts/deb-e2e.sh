#!/usr/bin/env bash
# End-to-end test of the Debian plugin with the real clients: pulp-cli-deb (PyPI, pinned below)
# drives `pulp-rs serve` (remote, repository, sync, verbatim and signed structured APT
# publications, distributions), and the real `apt-get update` + `apt-get download`, in a root of
# their own, fetch through the content app and check the signatures (`signed-by` the key, never
# `trusted=yes`); every .deb fetched must equal the fixture's.
#
# usage: scripts/deb-e2e.sh
#   PULP_RS_BIN           the binary (default target/debug/pulp-rs)
#   PULP_RS_DATABASE_URL  run the server on this (PostgreSQL) database instead of SQLite
#   PULP_CLI_DEB_VENV     the virtualenv to create or reuse
#
# Fixtures are made by the run with Debian's tools (tests/fixtures/deb/make-repo.sh) and served
# by a loopback HTTP server. Exit status 0 = passed.
set -euo pipefail

PULP_CLI_DEB_VERSION=0.5.0

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PULP_RS_BIN:-$ROOT/target/debug/pulp-rs}"
[ -x "$BIN" ] || { echo "pulp-rs binary not found: $BIN" >&2; exit 2; }
VENV="${PULP_CLI_DEB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pulp-rs/pulp-cli-deb-$PULP_CLI_DEB_VERSION}"

ensure_venv() {
  "$VENV/bin/pulp" --version 2>/dev/null | grep -q "deb: $PULP_CLI_DEB_VERSION" && return
  echo "== creating the pulp-cli-deb virtualenv in $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "pulp-cli-deb==$PULP_CLI_DEB_VERSION"
}
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
ensure_venv
flock -u 9

WORK="$(mktemp -d "${TMPDIR:-/tmp}/deb-e2e.XXXXXX")"
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" = 0 ] && [ -z "${DEB_E2E_KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
  return "$rc"
}
trap cleanup EXIT
STEP=""
OUT=""
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
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- fixtures --------------------------------------------------------------------------------
step "fixtures (dpkg-deb, apt-ftparchive, gpg)"
bash "$ROOT/tests/fixtures/deb/make-repo.sh" "$WORK/upstream" >"$WORK/fixture-build.log" 2>&1 \
  || { cat "$WORK/fixture-build.log" >&2; fail "the fixture script failed"; }
FIX_PORT="$(free_port)"
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/upstream" "$FIX_PORT" \
  >"$WORK/fixture.log" 2>&1 &
PIDS+=($!)
FIXTURE="http://127.0.0.1:$FIX_PORT"

# A signing key of our own for structured publications, and the script pulp-rs calls.
export GNUPGHOME="$WORK/signer-gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key "pulp-rs e2e signer <signer@example.invalid>" ed25519 sign never 2>>"$WORK/err"
SIGNER_FPR="$(gpg --batch --with-colons --list-keys | awk -F: '/^fpr/ {print $10; exit}')"
gpg --batch --armor --export "$SIGNER_FPR" >"$WORK/signer.asc"
cat >"$WORK/sign.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
export GNUPGHOME="$GNUPGHOME"
f="\$1"
gpg --batch --yes --local-user "\$PULP_SIGNING_KEY_FINGERPRINT" --clearsign -o "\$f.InRelease" "\$f"
gpg --batch --yes --local-user "\$PULP_SIGNING_KEY_FINGERPRINT" --armor --detach-sign -o "\$f.gpg" "\$f"
printf '{"signatures": {"inline": "%s", "detached": "%s"}}\n' "\$f.InRelease" "\$f.gpg"
EOF
chmod +x "$WORK/sign.sh"

# ---- the server ------------------------------------------------------------------------------
PASSWORD="e2e-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
DB_ARGS=()
[ -n "${PULP_RS_DATABASE_URL:-}" ] && DB_ARGS=(--database-url "$PULP_RS_DATABASE_URL")
API_PORT="$(free_port)"
CONTENT_PORT="$(free_port)"
PULP_ADMIN_PASSWORD="$PASSWORD" "$BIN" --data-dir "$WORK/data" "${DB_ARGS[@]}" serve \
  --api-bind "127.0.0.1:$API_PORT" --content-bind "127.0.0.1:$CONTENT_PORT" --workers 2 \
  >"$WORK/server.out" 2>"$WORK/server.log" &
PIDS+=($!)
for _ in $(seq 1 300); do
  grep -q '^Content app listening on' "$WORK/server.out" 2>/dev/null && break
  sleep 0.1
done
grep -q '^Content app listening on' "$WORK/server.out" || fail "pulp-rs serve did not start"
API="http://127.0.0.1:$API_PORT"
CONTENT="http://127.0.0.1:$CONTENT_PORT/pulp/content"

export XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache"
pulp() { "$VENV/bin/pulp" --base-url "$API" --username admin --password "$PASSWORD" "$@"; }
run() { if ! OUT="$(pulp "$@" 2>"$WORK/err")"; then fail "pulp $* exited non-zero"; fi; }
q() {
  printf '%s' "$OUT" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
r = eval(sys.argv[1])
print(r if not isinstance(r, (dict, list)) else json.dumps(r))' "$1"
}
expect() { [ "$1" = "$2" ] || fail "expected '$2', got '$1' ($3)"; }

# ---- apt, in a root of its own ---------------------------------------------------------------
# apt_fetch NAME SOURCES_LINE PACKAGE: `apt-get update`, then `apt-get download PACKAGE`; fails
# on any apt warning or error (a bad signature is one); prints the downloaded file's path.
apt_fetch() {
  local name=$1 line=$2 pkg=$3 r="$WORK/apt-$1"
  mkdir -p "$r/etc/apt/sources.list.d" "$r/etc/apt/apt.conf.d" "$r/etc/apt/preferences.d" \
    "$r/etc/apt/trusted.gpg.d" "$r/var/lib/apt/lists/partial" \
    "$r/var/cache/apt/archives/partial" "$r/var/lib/dpkg" "$r/dl"
  touch "$r/var/lib/dpkg/status"
  printf '%s\n' "$line" >"$r/etc/apt/sources.list"
  local apt=(apt-get -q -o "Dir=$r" -o "Dir::State::status=$r/var/lib/dpkg/status"
    -o "Dir::Etc=$r/etc/apt" -o "Dir::Etc::main=$r/etc/apt/apt.conf"
    -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
    -o "APT::Architecture=amd64" -o "APT::Architectures::=amd64"
    -o "Acquire::Languages=none")
  if ! "${apt[@]}" update >"$WORK/apt-$name.log" 2>&1; then
    cat "$WORK/apt-$name.log" >&2; fail "apt-get update ($name) failed"
  fi
  if grep -E '^(W|E|Err):' "$WORK/apt-$name.log" >&2; then fail "apt-get update ($name) complained"; fi
  (cd "$r/dl" && "${apt[@]}" download "$pkg" >>"$WORK/apt-$name.log" 2>&1) \
    || { cat "$WORK/apt-$name.log" >&2; fail "apt-get download $pkg ($name) failed"; }
  ls "$r/dl"/*.deb
}

# The fixture's first amd64 package of stable/main, and its pool file.
PKG="$(awk '/^Package:/ {print $2; exit}' "$WORK/upstream/dists/stable/main/binary-amd64/Packages")"
PKG_FILE="$(awk -v p="$PKG" '$1=="Package:" {cur=$2} $1=="Filename:" && cur==p {print $2; exit}' \
  "$WORK/upstream/dists/stable/main/binary-amd64/Packages")"
[ -n "$PKG" ] && [ -n "$PKG_FILE" ] || fail "no package in the fixture's stable/main/binary-amd64"
same_as_fixture() {
  cmp -s "$1" "$WORK/upstream/$PKG_FILE" || fail "$1 differs from the fixture's $PKG_FILE"
}

# ---- the workflow ----------------------------------------------------------------------------
step "status lists the deb component"
run status
[ "$(q '[v["component"] for v in d["versions"] if v["component"] == "deb"][0]')" = deb ] \
  || fail "no deb component in status"

for policy in immediate on_demand; do
  step "remote, repository and sync ($policy)"
  run deb remote create --name "up-$policy" --url "$FIXTURE/" --distribution stable \
    --distribution testing --gpgkey "@$WORK/upstream/key.asc" --policy "$policy"
  run deb repository create --name "repo-$policy" --remote "up-$policy"
  run deb repository sync --name "repo-$policy"
  run deb repository version show --repository "repo-$policy" --version 1
  [ "$(q 'd["content_summary"]["present"]["deb.package"]["count"] > 0')" = True ] \
    || fail "no packages in version 1"

  step "verbatim publication served to apt ($policy), upstream signature"
  run deb publication --type verbatim create --repository "repo-$policy"
  VERBATIM="$(q 'd["pulp_href"]')"
  run deb distribution create --name "verbatim-$policy" --base-path "verbatim-$policy" \
    --publication "$VERBATIM"
  DEB="$(apt_fetch "verbatim-$policy" \
    "deb [signed-by=$WORK/upstream/key.asc] $CONTENT/verbatim-$policy/ stable main" "$PKG")"
  same_as_fixture "$DEB"
done

step "signing service registered from the command line"
PULP_LOG=warn "$BIN" --data-dir "$WORK/data" "${DB_ARGS[@]}" add-signing-service signer \
  "$WORK/sign.sh" "$SIGNER_FPR" --public-key "$WORK/signer.asc" \
  --class deb:AptReleaseSigningService >"$WORK/signing.out" 2>>"$WORK/err" \
  || fail "add-signing-service failed"
run signing-service show --name signer

for policy in immediate on_demand; do
  step "structured APT publication, signed by our key ($policy)"
  run deb publication create --repository "repo-$policy" --structured \
    --signing-service signer
  APT_PUB="$(q 'd["pulp_href"]')"
  run deb distribution create --name "apt-$policy" --base-path "apt-$policy" \
    --publication "$APT_PUB"
  DEB="$(apt_fetch "apt-$policy" \
    "deb [signed-by=$WORK/signer.asc] $CONTENT/apt-$policy/ stable main" "$PKG")"
  same_as_fixture "$DEB"
done

step "re-sync with nothing changed makes no new version"
run deb repository sync --name repo-immediate
run deb repository show --name repo-immediate
expect "$(q 'd["latest_version_href"].rstrip("/").rsplit("/", 1)[1]')" 1 "latest version"

echo "deb end-to-end: PASSED"
