#!/usr/bin/env python3
"""Figures for the server, on SQLite and on PostgreSQL, with nginx serving the same files in the
same run (alternating, medians of --runs; ratios are pulp-rs / nginx):

- content: wrk with 16 and 256 connections over --files distinct files of 4 KiB and 256 KiB:
  req/s and p99 latency;
- 404: req/s of 1,000 distinct missing paths (in a distribution, so each is resolved once and
  then answered from the cache), nginx answering its own 404s;
- large: the same 4 KiB figure on a repository version of --large-units units (on_demand,
  the --files served ones fetched once first), against the --files-unit version, with the
  cache on and off (off: every request resolved by SQL);
- on_demand: the first fetch of --od-files distinct 256 KiB files through the content app,
  minus the same file straight from the upstream (nginx), median;
- rss: peak RSS of the content app while wrk keeps --rss-clients connections downloading a
  --rss-mib MiB file;
- sync: the time from `POST sync/` to the task `completed` for --sync-count x 4 KiB (SQLite).

Usage: scripts/server_figures.py [--runs 3] [--seconds 5] [--backends sqlite,postgres]
         [--only content,404,large,ondemand,rss,sync] [--large-units 1000000]
Needs: a release build (cargo build --release), wrk and nginx on PATH (Debian packages `wrk`,
`nginx-light`), psql and PULP_TEST_DATABASE_URL (an admin URL) for PostgreSQL. Everything
listens on 127.0.0.1; data lives in a temp directory (--work, default /dev/shm when present).
"""
import argparse, base64, hashlib, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import http.client, urllib.request, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "pulp-rs")
PASSWORD = "figures-password"
CONTENT_LABELS = ("4KiB", "256KiB")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_fixture(d, count, size, prefix="file", fake=0):
    """pulp_file layout: files under d, and d/PULP_MANIFEST (relative_path,sha256,size); `fake`
    more manifest lines name files that do not exist (units of a large on_demand repository)."""
    os.makedirs(d, exist_ok=True)
    lines = []
    for i in range(count):
        data = os.urandom(size)
        rel = "d%03d/%s-%07d.bin" % (i % 100, prefix, i)
        os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(d, rel), "wb") as f:
            f.write(data)
        lines.append("%s,%s,%d\n" % (rel, hashlib.sha256(data).hexdigest(), size))
    with open(os.path.join(d, "PULP_MANIFEST"), "w") as f:
        f.writelines(lines)
        for i in range(fake):
            f.write("x%03d/unit-%08d.bin,%s,4096\n" % (i % 1000, i, os.urandom(32).hex()))
    return [l.split(",")[0] for l in lines]


class Nginx:
    def __init__(self, root, work):
        self.port = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                """worker_processes 2; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000;
  open_file_cache max=10000 inactive=60s;
  types { application/octet-stream bin; }
  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  server { listen 127.0.0.1:%d backlog=4096; root %s; } }
"""
                % (work, work, work, work, work, work, work, self.port, root)
            )
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", work], stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait()


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


class Database:
    """A fresh PostgreSQL database (dropped by drop()), or SQLite in the data directory."""

    def __init__(self, backend):
        self.backend, self.url, self.admin = backend, None, None
        if backend == "postgres":
            self.admin = os.environ.get("PULP_TEST_DATABASE_URL")
            if not self.admin:
                raise SystemExit("PULP_TEST_DATABASE_URL is needed for PostgreSQL figures")
            self.name = "pulp_figures_" + uuid.uuid4().hex[:12]
            subprocess.run(["psql", self.admin, "-qc", "CREATE DATABASE " + self.name], check=True)
            base, _, query = self.admin.partition("?")
            self.url = base.rsplit("/", 1)[0] + "/" + self.name + ("?" + query if query else "")

    def drop(self):
        if self.url:
            subprocess.run(["psql", self.admin, "-qc", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name],
                           check=False)


class Pulp:
    def __init__(self, work, db=None, data=None, which="serve", extra_env=None, bin=None):
        self.api_port, self.content_port = free_port(), free_port()
        self.data = data or os.path.join(work, "pulp-data-%d" % self.api_port)
        env = dict(os.environ, PULP_ADMIN_PASSWORD=PASSWORD)
        env.pop("PULP_DATABASE_URL", None)
        if db is not None and db.url:
            env["PULP_DATABASE_URL"] = db.url
        env.update(extra_env or {})
        args = [bin or BIN, "--data-dir", self.data, which]
        if which in ("serve", "api"):
            args += ["--api-bind", "127.0.0.1:%d" % self.api_port]
        if which in ("serve", "content"):
            args += ["--content-bind", "127.0.0.1:%d" % self.content_port]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if which in ("serve", "api"):
            wait_port(self.api_port)
        if which in ("serve", "content"):
            wait_port(self.content_port)
        self.auth = "Basic " + base64.b64encode(("admin:" + PASSWORD).encode()).decode()

    def call(self, method, path, body=None):
        url = path if path.startswith("http") else "http://127.0.0.1:%d%s" % (self.api_port, path)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", self.auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req) as r:
            text = r.read()
            return json.loads(text) if text else None

    def wait_task(self, href, poll=0.05):
        while True:
            t = self.call("GET", href)
            if t["state"] in ("completed", "failed", "canceled"):
                return t
            time.sleep(poll)

    def content(self, path=""):
        return "http://127.0.0.1:%d/pulp/content/%s" % (self.content_port, path)

    def status(self):
        """VmRSS, VmHWM, RssAnon, RssFile of the process, in MiB."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) / 1024
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def sync_repo(pulp, manifest_url, name, policy="immediate"):
    remote = pulp.call("POST", "/pulp/api/v3/remotes/file/file/",
                       {"name": name, "url": manifest_url, "policy": policy})
    repo = pulp.call("POST", "/pulp/api/v3/repositories/file/file/",
                     {"name": name, "remote": remote["pulp_href"]})
    t0 = time.perf_counter()
    task = pulp.call("POST", repo["pulp_href"] + "sync/", {})["task"]
    done = pulp.wait_task(task)
    elapsed = time.perf_counter() - t0
    if done["state"] != "completed":
        raise SystemExit("sync failed: %s" % json.dumps(done))
    return repo, elapsed


def distribute(pulp, name, base_path, repo):
    """A publication of the repository's latest version, then a distribution of the repository
    (which serves its newest publication, as pulpcore's file distributions do)."""
    t = pulp.call("POST", "/pulp/api/v3/publications/file/file/", {"repository": repo["pulp_href"]})
    done = pulp.wait_task(t["task"])
    if done["state"] != "completed":
        raise SystemExit("publish failed: %s" % json.dumps(done))
    t = pulp.call("POST", "/pulp/api/v3/distributions/file/file/",
                  {"name": name, "base_path": base_path, "repository": repo["pulp_href"]})
    if "task" in t:
        pulp.wait_task(t["task"])


def get(url):
    """Fetches url on a fresh connection: (status, body length, seconds)."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, port = hostport.split(":")
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    c.request("GET", "/" + path)
    r = c.getresponse()
    n = len(r.read())
    took = time.perf_counter() - t0
    c.close()
    return r.status, n, took


def wrk_run(urls_file, base, seconds, conns, expect_ok=True):
    """wrk over the paths of urls_file below base: (req/s, p99 ms, MB/s, output)."""
    script = write_lua(urls_file, base)
    origin = "/".join(base.split("/", 3)[:3])
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--latency", "-s", script, origin],
                         capture_output=True, text=True).stdout
    rps = p99 = mbps = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if line.startswith("Transfer/sec:"):
            v = line.split()[1]
            mult = {"KB": 1 / 1024, "MB": 1, "GB": 1024}.get(v[-2:], 1 / (1024 * 1024))
            mbps = float(v[:-2] if v[-2:] in ("KB", "MB", "GB") else v[:-1]) * mult
        if line.startswith("99%"):
            v = line.split()[1]
            for unit, m in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
                if v.endswith(unit):
                    p99 = float(v[: -len(unit)]) * m
                    break
    bad = "Socket errors" in out and "timeout" in out
    if rps is None or (expect_ok and "Non-2xx" in out) or bad:
        raise SystemExit("wrk failed against %s:\n%s" % (base, out))
    return rps, p99, mbps, out


def compare(runs, seconds, contenders, urls_file, conns, expect_ok=True):
    """Alternates the contenders run by run; medians of req/s and p99 per contender."""
    samples = {who: [] for who, _ in contenders}
    for r in range(runs):
        order = contenders if r % 2 == 0 else list(reversed(contenders))
        for who, base in order:
            rps, p99, mbps, _ = wrk_run(urls_file, base, seconds, conns, expect_ok)
            samples[who].append({"rps": rps, "p99_ms": p99, "mbps": mbps})
    out = {}
    for who, runs_ in samples.items():
        out[who] = {"rps": statistics.median(x["rps"] for x in runs_),
                    "p99_ms": statistics.median(x["p99_ms"] for x in runs_),
                    "runs": runs_}
    return out


def write_urls(work, name, paths):
    urls = os.path.join(work, "urls-" + name)
    with open(urls, "w") as f:
        f.write("\n".join(paths) + "\n")
    return urls


def backend_figures(args, work, nginx, paths, backend):
    res = {}
    only = set(args.only)
    db = Database(backend)
    pulp = Pulp(work, db)
    try:
        if "content" in only or "404" in only or "large" in only:
            repos = {}
            for label in CONTENT_LABELS:
                repo, _ = sync_repo(pulp, nginx.url("fixtures/%s/PULP_MANIFEST" % label), "c" + label)
                distribute(pulp, label, "bench/" + label, repo)
                repos[label] = repo
        if "content" in only:
            # --baseline-bin: an older build's content app on the same data, a third contender.
            base = (Pulp(work, db, data=pulp.data, which="content", bin=args.baseline_bin)
                    if args.baseline_bin else None)
            for label in CONTENT_LABELS:
                urls = write_urls(work, label, paths[label])
                for conns in (16, 256):
                    contenders = [("pulp-rs", pulp.content("bench/%s/" % label)),
                                  ("nginx", nginx.url("fixtures/%s/" % label))]
                    if base:
                        contenders.append(("baseline", base.content("bench/%s/" % label)))
                    row = compare(args.runs, args.seconds, contenders, urls, conns)
                    row["ratio_rps"] = row["pulp-rs"]["rps"] / row["nginx"]["rps"]
                    row["ratio_p99"] = row["pulp-rs"]["p99_ms"] / row["nginx"]["p99_ms"]
                    if base:
                        row["ratio_rps_baseline"] = row["pulp-rs"]["rps"] / row["baseline"]["rps"]
                        row["baseline_ratio_rps"] = row["baseline"]["rps"] / row["nginx"]["rps"]
                    res["%s c%d" % (label, conns)] = row
                    print(backend, label, conns, json.dumps({k: v for k, v in row.items()}, default=str)[:400],
                          file=sys.stderr)
            if base:
                base.stop()
        if "404" in only:
            missing = ["d%03d/missing-%07d.bin" % (i % 100, i) for i in range(1000)]
            urls = write_urls(work, "missing", missing)
            for conns in (16, 256):
                row = compare(args.runs, args.seconds, [
                    ("pulp-rs", pulp.content("bench/4KiB/")),
                    ("nginx", nginx.url("fixtures/4KiB/"))], urls, conns, expect_ok=False)
                row["ratio_rps"] = row["pulp-rs"]["rps"] / row["nginx"]["rps"]
                res["404 c%d" % conns] = row
                print(backend, "404", conns, row["ratio_rps"], file=sys.stderr)
        if "large" in only:
            t0 = time.perf_counter()
            big, _ = sync_repo(pulp, nginx.url("large/PULP_MANIFEST"), "large", "on_demand")
            sync_s = time.perf_counter() - t0
            distribute(pulp, "large", "bench/large", big)
            for p in paths["large"]:  # each served file fetched (and saved) once
                st, _, _ = get(pulp.content("bench/large/" + p))
                if st != 200:
                    raise SystemExit("large: %s answered %d" % (p, st))
            urls = write_urls(work, "large", paths["large"])
            nocache = Pulp(work, db, data=pulp.data, which="content",
                           extra_env={"PULP_CONTENT_CACHE_TTL": "0"})
            try:
                row = {"units": args.large_units, "sync_on_demand_s": sync_s}
                for conns in (16, 256):
                    # Each contender over its own paths (same count, same size).
                    samples = {}
                    for rr in range(args.runs):
                        order = [("large", pulp.content("bench/large/"), "large"),
                                 ("small", pulp.content("bench/4KiB/"), "4KiB"),
                                 ("large_nocache", nocache.content("bench/large/"), "large"),
                                 ("small_nocache", nocache.content("bench/4KiB/"), "4KiB"),
                                 ("nginx", nginx.url("fixtures/4KiB/"), "4KiB")]
                        if rr % 2:
                            order.reverse()
                        for who, base, lbl in order:
                            rps, p99, _, _ = wrk_run(write_urls(work, lbl, paths[lbl]), base,
                                                     args.seconds, conns)
                            samples.setdefault(who, []).append({"rps": rps, "p99_ms": p99})
                    r = {who: {"rps": statistics.median(x["rps"] for x in v),
                               "p99_ms": statistics.median(x["p99_ms"] for x in v), "runs": v}
                         for who, v in samples.items()}
                    r["ratio_large_small"] = r["large"]["rps"] / r["small"]["rps"]
                    r["ratio_large_small_nocache"] = r["large_nocache"]["rps"] / r["small_nocache"]["rps"]
                    r["ratio_large_nginx"] = r["large"]["rps"] / r["nginx"]["rps"]
                    row["c%d" % conns] = r
                    print(backend, "large", conns, r["ratio_large_small"], r["ratio_large_small_nocache"],
                          file=sys.stderr)
                res["large"] = row
            finally:
                nocache.stop()
        if "ondemand" in only:
            repo, _ = sync_repo(pulp, nginx.url("od/PULP_MANIFEST"), "od", "on_demand")
            distribute(pulp, "od", "bench/od", repo)
            added, up_s, pulp_s = [], [], []
            for p in paths["od"]:
                st1, n1, direct = get(nginx.url("od/" + p))
                st2, n2, through = get(pulp.content("bench/od/" + p))
                if st1 != 200 or st2 != 200 or n1 != n2:
                    raise SystemExit("on_demand: %s %d/%d %d/%d" % (p, st1, st2, n1, n2))
                up_s.append(direct * 1000)
                pulp_s.append(through * 1000)
                added.append((through - direct) * 1000)
            res["on_demand_first_fetch"] = {
                "files": len(added), "size": 262144,
                "upstream_ms_median": statistics.median(up_s),
                "through_pulp_ms_median": statistics.median(pulp_s),
                "added_ms_median": statistics.median(added),
                "added_ms_p90": sorted(added)[int(len(added) * 0.9) - 1]}
            print(backend, "ondemand", res["on_demand_first_fetch"], file=sys.stderr)
        if "rss" in only:
            repo, _ = sync_repo(pulp, nginx.url("huge/PULP_MANIFEST"), "huge")
            distribute(pulp, "huge", "bench/huge", repo)
            urls = write_urls(work, "huge", paths["huge"])
            before = pulp.status()
            proc = subprocess.Popen(["wrk", "-t2", "-c%d" % args.rss_clients, "-d%ds" % args.rss_seconds,
                                     "--timeout", "120s", "-s", write_lua(urls, pulp.content("bench/huge/")),
                                     "http://127.0.0.1:%d" % pulp.content_port],
                                    stdout=subprocess.PIPE, text=True)
            peak = {}
            while proc.poll() is None:
                st = pulp.status()
                for k, v in st.items():
                    peak[k] = max(peak.get(k, 0), v)
                time.sleep(0.1)
            out = proc.stdout.read()
            res["rss"] = {"clients": args.rss_clients, "file_mib": args.rss_mib, "before_mib": before,
                          "peak_mib": peak, "after": pulp.status(),
                          "wrk": [l.strip() for l in out.splitlines() if "Transfer/sec" in l or "requests in" in l
                                  or "Socket" in l]}
            print(backend, "rss", res["rss"], file=sys.stderr)
    finally:
        pulp.stop()
        db.drop()
    return res


def write_lua(urls_file, base):
    script = urls_file + ".lua"
    prefix = "/" + base.split("/", 3)[3]
    with open(script, "w") as f:
        f.write("""
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", "%s" .. paths[i])
end
""" % (urls_file, prefix))
    return script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--large-units", type=int, default=1000000)
    ap.add_argument("--od-files", type=int, default=100)
    ap.add_argument("--rss-clients", type=int, default=1000)
    ap.add_argument("--rss-mib", type=int, default=50)
    ap.add_argument("--rss-seconds", type=int, default=15)
    ap.add_argument("--sync-count", type=int, default=10000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--only", default="content,404,large,ondemand,rss,sync")
    ap.add_argument("--work", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--baseline-bin", help="an older pulp-rs binary whose content app joins the "
                    "content figure as a third contender (same data, same run)")
    args = ap.parse_args()
    args.only = args.only.split(",")
    if not os.path.exists(BIN):
        raise SystemExit("build first: cargo build --release (looked for %s)" % BIN)
    work = tempfile.mkdtemp(prefix="pulp-figures-", dir=args.work)
    results = {"args": vars(args), "backends": {}, "sync_seconds": []}
    try:
        fixtures = os.path.join(work, "fixtures")
        paths = {}
        for label, size in (("4KiB", 4096), ("256KiB", 262144)):
            paths[label] = write_fixture(os.path.join(fixtures, label), args.files, size)
        if "large" in args.only:
            paths["large"] = write_fixture(os.path.join(work, "large"), args.files, 4096, "big",
                                           fake=max(args.large_units - args.files, 0))
        if "ondemand" in args.only:
            paths["od"] = write_fixture(os.path.join(work, "od"), args.od_files, 262144, "od")
        if "rss" in args.only:
            paths["huge"] = write_fixture(os.path.join(work, "huge"), 1, args.rss_mib << 20, "huge")
        if "sync" in args.only:
            write_fixture(os.path.join(work, "sync10k"), args.sync_count, 4096)
        nginx = Nginx(work, work)
        try:
            for backend in args.backends.split(","):
                results["backends"][backend] = backend_figures(args, work, nginx, paths, backend)
            # POST sync/ -> completed, a fresh server and data directory per run.
            for i in range(args.runs if "sync" in args.only else 0):
                pulp = Pulp(work)
                try:
                    _, secs = sync_repo(pulp, nginx.url("sync10k/PULP_MANIFEST"), "s%d" % i)
                    results["sync_seconds"].append(secs)
                finally:
                    pulp.stop()
        finally:
            nginx.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    for backend, res in results["backends"].items():
        for key, row in res.items():
            if "ratio_rps" in row:
                print("%-8s %-12s pulp-rs %8.0f req/s p99 %7.2f ms | nginx %8.0f req/s p99 %7.2f ms | ratio %.2f" % (
                    backend, key, row["pulp-rs"]["rps"], row["pulp-rs"]["p99_ms"],
                    row["nginx"]["rps"], row["nginx"]["p99_ms"], row["ratio_rps"]))
    s = results["sync_seconds"]
    if s:
        print("POST sync/ -> completed, %d x 4 KiB: median %.2f s (min %.2f, max %.2f)" % (
            args.sync_count, statistics.median(s), min(s), max(s)))


if __name__ == "__main__":
    main()
