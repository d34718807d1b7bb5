#!/usr/bin/env python3
"""Figures for the server: content app throughput against nginx serving the same files, and
the time from `POST sync/` to the task `completed` for a 10,000 x 4 KiB fixture.

Usage: scripts/server_figures.py [--runs 3] [--files 1000] [--sync-count 10000]
Needs: a release build (cargo build --release), wrk and nginx on PATH (Debian packages `wrk`,
`nginx-light`). Everything listens on 127.0.0.1; all data lives in a temp directory.
"""
import argparse, base64, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "pulp-rs")
PASSWORD = "figures-password"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_fixture(d, count, size):
    """pulp_file layout: files under d, and d/PULP_MANIFEST (relative_path,sha256,size)."""
    import hashlib
    os.makedirs(d, exist_ok=True)
    lines = []
    for i in range(count):
        data = os.urandom(size)
        rel = "d%03d/file-%07d.bin" % (i % 100, i)
        os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(d, rel), "wb") as f:
            f.write(data)
        lines.append("%s,%s,%d\n" % (rel, hashlib.sha256(data).hexdigest(), size))
    with open(os.path.join(d, "PULP_MANIFEST"), "w") as f:
        f.writelines(lines)
    return [l.split(",")[0] for l in lines]


class Nginx:
    def __init__(self, root, work):
        self.port = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                """worker_processes 2; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nodelay on; keepalive_requests 100000;
  types { application/octet-stream bin; }
  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  server { listen 127.0.0.1:%d; root %s; } }
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


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


class Pulp:
    def __init__(self, work):
        self.api_port, self.content_port = free_port(), free_port()
        self.data = os.path.join(work, "pulp-data-%d" % self.api_port)
        env = dict(os.environ, PULP_ADMIN_PASSWORD=PASSWORD)
        env.pop("PULP_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [BIN, "--data-dir", self.data, "serve",
             "--api-bind", "127.0.0.1:%d" % self.api_port,
             "--content-bind", "127.0.0.1:%d" % self.content_port],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.api_port)
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

    def wait_task(self, href, poll=0.02):
        while True:
            t = self.call("GET", href)
            if t["state"] in ("completed", "failed", "canceled"):
                return t
            time.sleep(poll)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def sync_repo(pulp, manifest_url, name):
    remote = pulp.call("POST", "/pulp/api/v3/remotes/file/file/",
                       {"name": name, "url": manifest_url, "policy": "immediate"})
    repo = pulp.call("POST", "/pulp/api/v3/repositories/file/file/",
                     {"name": name, "remote": remote["pulp_href"]})
    t0 = time.perf_counter()
    task = pulp.call("POST", repo["pulp_href"] + "sync/", {})["task"]
    done = pulp.wait_task(task)
    elapsed = time.perf_counter() - t0
    if done["state"] != "completed":
        raise SystemExit("sync failed: %s" % json.dumps(done))
    return repo, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--sync-count", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit("build first: cargo build --release (looked for %s)" % BIN)
    work = tempfile.mkdtemp(prefix="pulp-figures-")
    results = {"content": {}, "sync_seconds": []}
    try:
        fixtures = os.path.join(work, "fixtures")
        paths = {}
        for label, size in (("4KiB", 4096), ("256KiB", 262144)):
            paths[label] = write_fixture(os.path.join(fixtures, label), args.files, size)
        big = os.path.join(work, "sync10k")
        write_fixture(big, args.sync_count, 4096)
        nginx = Nginx(work, work)
        try:
            # Content app against nginx, same files, same client, same run.
            pulp = Pulp(work)
            try:
                for label in paths:
                    repo, _ = sync_repo(pulp, nginx.url("fixtures/%s/PULP_MANIFEST" % label), "c" + label)
                    dist_task = pulp.call("POST", "/pulp/api/v3/distributions/file/file/",
                                          {"name": label, "base_path": "bench/" + label,
                                           "repository": repo["pulp_href"]})
                    if "task" in dist_task:
                        pulp.wait_task(dist_task["task"])
                    urls = os.path.join(work, "urls-" + label)
                    with open(urls, "w") as f:
                        f.write("\n".join(paths[label]) + "\n")
                    row = {}
                    for who, base in (
                        ("pulp-rs", "http://127.0.0.1:%d/pulp/content/bench/%s/" % (pulp.content_port, label)),
                        ("nginx", "http://127.0.0.1:%d/fixtures/%s/" % (nginx.port, label)),
                    ):
                        runs = []
                        for _ in range(args.runs):
                            rps, mbps, errors, out = wrk_run(urls, base, args.seconds)
                            if errors or rps is None:
                                raise SystemExit("wrk reported errors against %s:\n%s" % (who, out))
                            runs.append((rps, mbps))
                        row[who] = {"rps_median": statistics.median(r[0] for r in runs),
                                    "mbps_median": statistics.median(r[1] for r in runs),
                                    "runs": runs}
                    row["ratio_rps"] = row["pulp-rs"]["rps_median"] / row["nginx"]["rps_median"]
                    results["content"][label] = row
            finally:
                pulp.stop()
            # POST sync/ -> completed, a fresh server and data directory per run.
            for i in range(args.runs):
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
    print(json.dumps(results, indent=2))
    for label, row in results["content"].items():
        print("%-7s pulp-rs %8.0f req/s %7.1f MB/s | nginx %8.0f req/s %7.1f MB/s | ratio %.2f" % (
            label, row["pulp-rs"]["rps_median"], row["pulp-rs"]["mbps_median"],
            row["nginx"]["rps_median"], row["nginx"]["mbps_median"], row["ratio_rps"]))
    s = results["sync_seconds"]
    print("POST sync/ -> completed, %d x 4 KiB: median %.2f s (min %.2f, max %.2f)" % (
        args.sync_count, statistics.median(s), min(s), max(s)))


def wrk_run(urls_file, base, seconds):
    script = urls_file + ".lua"
    prefix = "/" + base.split("/", 3)[3]
    origin = "/".join(base.split("/", 3)[:3])
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
    out = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % seconds, "-s", script, origin],
                         capture_output=True, text=True).stdout
    rps = mbps = None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if line.startswith("Transfer/sec:"):
            v = line.split()[1]
            mult = {"KB": 1 / 1024, "MB": 1, "GB": 1024}.get(v[-2:], 1)
            mbps = float(v[:-2]) * mult
    errors = "Non-2xx" in out or "Socket errors" in out
    return rps, mbps, errors, out


if __name__ == "__main__":
    main()
