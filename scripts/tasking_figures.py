#!/usr/bin/env python3
"""Figures of the task system (issue "Scale out"), on a fresh PostgreSQL database (made and
dropped here) and on SQLite where it makes sense; every process listens on 127.0.0.1.

- latency: dispatch-to-start of a task on idle workers, `started_at - pulp_created` of --latency
  tasks dispatched one at a time through the REST API (each after the previous one finished):
  median and p99. The task is the cheapest real one the API dispatches: a repository `modify/`
  that adds and removes nothing (it still reserves the repository and opens and drops a
  version).
- throughput: one client POSTs --tasks such modify tasks over 16 repositories as fast as it can
  (one keep-alive connection); 4 workers run them. Dispatched/s (client side), and completed/s
  from the first task's `pulp_created` to the last one's `finished_at`.
- idle: database transactions per second of 50 idle workers (PostgreSQL only: the
  `xact_commit + xact_rollback` delta of the database in `pg_stat_database` over --idle-seconds,
  after a warm-up; pg_stat_statements needs a server restart the shared cluster must not get).
  Once as one `pulp-rs worker --workers 50` process, once as 50 one-worker processes.
- syncs: 8 repositories, each syncing its own fixture of --sync-files x 256 KiB (served by nginx),
  dispatched at once, with 1, 2 and 4 workers: seconds from the first dispatch to the last
  `finished_at`; ratios against 1 worker.

The claim cost against the queue length is `cargo bench --bench tasking` (criterion).

Usage: scripts/tasking_figures.py [--backends postgres,sqlite] [--only latency,throughput,idle,syncs]
                                  [--one-process | --split]
Needs: a release build (`cargo build --release`, CARGO_TARGET_DIR honoured), psql and
PULP_TEST_DATABASE_URL (an admin URL; default postgres://postgres@127.0.0.1:5432/postgres), nginx.
"""
import argparse, contextlib, http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_figures as sf  # noqa: E402  (processes, databases, fixtures, nginx)

UPLOAD_SIZE = 256 * 1024
# --one-process: PostgreSQL figures with the workers in the API's process too (`serve`).
ONE_PROCESS = False
# --split: SQLite figures with the workers in a process of their own (`pulp-rs worker`) too.
SPLIT = False


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Client:
    """One keep-alive connection to the API, as admin."""

    def __init__(self, pulp):
        self.pulp = pulp
        self.conn = http.client.HTTPConnection("127.0.0.1", pulp.api_port, timeout=120)
        self.headers = {"Authorization": pulp.auth, "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers=self.headers)
        r = self.conn.getresponse()
        text = r.read()
        if r.status >= 400:
            raise SystemExit("%s %s: %d %s" % (method, path, r.status, text[:300]))
        return json.loads(text) if text else None

    def wait(self, href, poll=0.002):
        while True:
            t = self.call("GET", href)
            if t["state"] in ("completed", "failed", "canceled", "skipped"):
                if t["state"] != "completed":
                    raise SystemExit("task %s: %s" % (t["state"], json.dumps(t)))
                return t
            time.sleep(poll)


def repos(client, n, prefix):
    return [client.call("POST", "/pulp/api/v3/repositories/file/file/", {"name": "%s%d" % (prefix, i)})
            for i in range(n)]


def noop(client, repo):
    """Dispatches the no-op modify of `repo`; its task href."""
    return client.call("POST", repo["pulp_href"] + "modify/", {})["task"]


def start(work, db, workers, separate):
    """The API (and workers): `serve` in one process, or `api` + `worker` processes."""
    if not separate:
        return [sf.Pulp(work, db, which="serve", extra_env={"PULP_WORKERS": str(workers)})]
    api = sf.Pulp(work, db, which="api")
    out = [api]
    if workers:
        out.append(sf.Pulp(work, db, data=api.data, which="worker", extra_env={"PULP_WORKERS": str(workers)}))
    return out


def stop(procs):
    for p in reversed(procs):
        p.stop()


def wait_workers(client, n):
    deadline = time.time() + 60
    while time.time() < deadline:
        if len(client.call("GET", "/pulp/api/v3/status/")["online_workers"]) >= n:
            return
        time.sleep(0.1)
    raise SystemExit("workers never came online")


@contextlib.contextmanager
def running(work, backend, workers):
    """A fresh database, the API and `workers` workers on it: a client, once they are online."""
    db = sf.Database(backend)
    procs = start(work, db, workers, (backend == "postgres" and not ONE_PROCESS) or SPLIT)
    try:
        c = Client(procs[0])
        wait_workers(c, workers)
        yield c
    finally:
        stop(procs)
        shutil.rmtree(procs[0].data, ignore_errors=True)
        db.drop()


def latency(work, backend, n):
    with running(work, backend, 4) as c:
        repo = repos(c, 1, "lat")[0]
        c.wait(noop(c, repo))  # a warm-up task, not counted
        out = []
        for _ in range(n):
            t = c.wait(noop(c, repo))
            out.append((ts(t["started_at"]) - ts(t["pulp_created"])) * 1000)
            time.sleep(0.02)
        out.sort()
        return statistics.median(out), out[min(len(out) - 1, int(len(out) * 0.99))]


def throughput(work, backend, n):
    with running(work, backend, 4) as c:
        rs = repos(c, 16, "tp")
        t0 = time.perf_counter()
        hrefs = [noop(c, rs[i % len(rs)]) for i in range(n)]
        dispatch = time.perf_counter() - t0
        first = last = None
        for h in hrefs:
            t = c.wait(h, poll=0.01)
            created, finished = ts(t["pulp_created"]), ts(t["finished_at"])
            first = created if first is None else min(first, created)
            last = finished if last is None else max(last, finished)
        return n / dispatch, n / (last - first)


def xacts(db):
    out = subprocess.run(["psql", db.admin, "-Atc",
                          "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '%s'" % db.name],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def idle(work, seconds, processes):
    db = sf.Database("postgres")
    api = sf.Pulp(work, db, which="api")  # migrates the database and makes the key
    api.stop()
    procs = []
    try:
        per = 50 // processes
        for _ in range(processes):
            procs.append(sf.Pulp(work, db, data=api.data, which="worker", extra_env={"PULP_WORKERS": str(per)}))
        time.sleep(15)  # start-up, first heartbeats, stats flushed
        a, t0 = xacts(db), time.time()
        time.sleep(seconds)
        b, t1 = xacts(db), time.time()
        return (b - a) / (t1 - t0)
    finally:
        stop(procs)
        db.drop()


def fixtures(work, count, files):
    """`count` fixture directories of `files` distinct 256 KiB files each, under one root."""
    root = os.path.join(work, "fixtures")
    for i in range(count):
        sf.write_fixture(os.path.join(root, "r%d" % i), files, UPLOAD_SIZE, prefix="r%d" % i)
    return root


def syncs(work, backend, nginx, workers, count):
    with running(work, backend, workers) as c:
        rs = []
        for i in range(count):
            remote = c.call("POST", "/pulp/api/v3/remotes/file/file/",
                            {"name": "s%d" % i, "url": nginx.url("r%d/PULP_MANIFEST" % i), "policy": "immediate"})
            rs.append(c.call("POST", "/pulp/api/v3/repositories/file/file/",
                             {"name": "s%d" % i, "remote": remote["pulp_href"]}))
        t0 = time.time()
        hrefs = [c.call("POST", r["pulp_href"] + "sync/", {})["task"] for r in rs]
        last = max(ts(c.wait(h, poll=0.2)["finished_at"]) for h in hrefs)
        return last - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--only", default="latency,throughput,idle,syncs")
    ap.add_argument("--latency", type=int, default=100)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--sync-files", type=int, default=2000)
    ap.add_argument("--sync-count", type=int, default=8)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir on disk)")
    ap.add_argument("--one-process", action="store_true",
                    help="on PostgreSQL too, run the workers in the API's process (`serve`)")
    ap.add_argument("--split", action="store_true",
                    help="on SQLite too, run the workers in a process of their own (`worker`)")
    args = ap.parse_args()
    global ONE_PROCESS, SPLIT
    ONE_PROCESS, SPLIT = args.one_process, args.split
    os.environ.setdefault("PULP_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
    if not os.path.exists(sf.BIN):
        raise SystemExit("no release build at %s (cargo build --release)" % sf.BIN)
    backends = args.backends.split(",")
    only = args.only.split(",")
    work = tempfile.mkdtemp(prefix="pulp-tasking-figures-", dir=args.work)
    os.chmod(work, 0o755)  # nginx workers run as another user
    try:
        if "latency" in only:
            for b in backends:
                med, p99 = latency(work, b, args.latency)
                print("latency %-8s dispatch-to-start over %d tasks: median %.2f ms, p99 %.2f ms (goal < 20 ms)"
                      % (b, args.latency, med, p99), flush=True)
        if "throughput" in only:
            for b in backends:
                d, c = throughput(work, b, args.tasks)
                print("throughput %-8s %d no-op tasks, 4 workers: dispatched %.0f/s, completed %.0f/s"
                      % (b, args.tasks, d, c), flush=True)
        if "idle" in only and "postgres" in backends:
            for processes in (1, 5):
                q = idle(work, args.idle_seconds, processes)
                print("idle postgres 50 workers in %d process(es): %.2f transactions/s (goal < 10)"
                      % (processes, q), flush=True)
        if "syncs" in only:
            root = fixtures(work, args.sync_count, args.sync_files)
            for b in backends:
                base = None
                for w in [int(x) for x in args.workers.split(",")]:
                    # A fresh nginx per run: its open_file_cache (10,000) outgrows its file limit
                    # (8,192) over 16,000 files, and it answers 500s.
                    nginx = sf.Nginx(root, work)
                    try:
                        s = syncs(work, b, nginx, w, args.sync_count)
                    finally:
                        nginx.stop()
                    base = base or s
                    print("syncs %-8s %d x %d x 256 KiB, %d worker(s): %.1f s (%.2fx the first)"
                          % (b, args.sync_count, args.sync_files, w, s, base / s), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
