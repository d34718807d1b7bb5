#!/usr/bin/env python3
"""Figures for the Debian plugin (issue 13's closing note), in one run, alternating:

- a --packages package fixture (one suite `stable`, component `main`, amd64 + all; each .deb a
  --deb-kib KiB file: sync reads no .deb, so their bytes need not be real packages), served by
  nginx on 127.0.0.1 with an access log (HTTP requests are counted from it):
  pulp-rs sync immediate, on_demand and an unchanged re-sync (time from the task's creation by
  POST sync/ to its end, by the server's clock; peak RSS of the server process; upstream requests), next to
  `aptly mirror create` + `aptly mirror update` and `debmirror` (wall time, peak RSS by
  /usr/bin/time, upstream requests);
- a generated index of --big stanzas synced on_demand (time, peak RSS) and the structured
  publication of those packages (time).

Usage: scripts/deb_figures.py [--runs 3] [--packages 4000] [--big 60000] [--only small,big]
                              [--processes serve,split]
Needs a release build (cargo build --release), nginx, aptly, debmirror (Debian packages
`nginx-light`, `aptly`, `debmirror`). Signatures are not checked by any contender (pulp-rs
without gpgkey, aptly -ignore-signatures, debmirror --no-check-gpg), so all do the same work.
"""
import argparse, datetime, gzip, hashlib, json, lzma, os, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_figures import BIN, Pulp, free_port, wait_port  # noqa: E402


def write_repo(root, count, deb_kib, real_files=True):
    """A Debian repository under root: pool/, dists/stable/{Release,main/binary-*/Packages*}."""
    stanzas = {"amd64": [], "all": []}
    body = os.urandom(deb_kib * 1024) if real_files else b""
    for i in range(count):
        arch = "all" if i % 10 == 0 else "amd64"
        name = "pkg%06d" % i
        rel = "pool/main/p/%s/%s_1.%d-1_%s.deb" % (name, name, i, arch)
        data = body[:-8] + i.to_bytes(8, "big") if real_files else os.urandom(16)
        size = len(data) if real_files else deb_kib * 1024
        if real_files:
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
            sha256, md5, sha1 = (hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                                 hashlib.sha1(data).hexdigest())
        else:
            sha256, md5, sha1 = os.urandom(32).hex(), os.urandom(16).hex(), os.urandom(20).hex()
        stanzas[arch].append(
            "Package: %s\nVersion: 1.%d-1\nArchitecture: %s\nMaintainer: Figures <f@example.invalid>\n"
            "Installed-Size: %d\nSection: misc\nPriority: optional\nFilename: %s\nSize: %d\n"
            "MD5sum: %s\nSHA1: %s\nSHA256: %s\nDescription: package %d\n generated for figures\n"
            % (name, i, arch, size // 1024 + 1, rel, size, md5, sha1, sha256, i))
    files = []
    for arch in ("amd64", "all"):
        text = "\n".join(stanzas[arch] + (stanzas["all"] if arch == "amd64" else [])).encode()
        d = "main/binary-%s" % arch
        os.makedirs(os.path.join(root, "dists/stable", d), exist_ok=True)
        for name, data in (("Packages", text), ("Packages.gz", gzip.compress(text, 6)),
                           ("Packages.xz", lzma.compress(text))):
            with open(os.path.join(root, "dists/stable", d, name), "wb") as f:
                f.write(data)
            files.append(("%s/%s" % (d, name), data))
    release = ("Origin: Figures\nLabel: Figures\nSuite: stable\nCodename: stable\n"
               "Date: Thu, 03 Dec 2026 00:00:00 UTC\nArchitectures: amd64 all\nComponents: main\n")
    for title, algo in (("MD5Sum", hashlib.md5), ("SHA1", hashlib.sha1), ("SHA256", hashlib.sha256)):
        release += title + ":\n" + "".join(
            " %s %d %s\n" % (algo(d).hexdigest(), len(d), n) for n, d in files)
    rel = os.path.join(root, "dists/stable/Release")
    with open(rel, "w") as f:
        f.write(release)
    sign(rel, os.path.join(os.path.dirname(root), "gnupg"))


def sign(release, home):
    """InRelease and Release.gpg next to release, by a throwaway key in home (debmirror insists
    on a signature file even when it checks none)."""
    env = dict(os.environ, GNUPGHOME=home)
    if not os.path.isdir(home):
        os.makedirs(home, mode=0o700)
        subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
                        "--quick-gen-key", "figures <f@example.invalid>", "ed25519", "sign", "never"],
                       env=env, check=True)
    subprocess.run(["gpg", "--batch", "--yes", "--clearsign", "-o", release[:-len("Release")] + "InRelease",
                    release], env=env, check=True)
    subprocess.run(["gpg", "--batch", "--yes", "--armor", "--detach-sign", "-o", release + ".gpg", release],
                   env=env, check=True)


class LoggingNginx:
    """nginx serving root with an access log, to count the requests each contender makes."""

    def __init__(self, root, work):
        self.port, self.log = free_port(), os.path.join(work, "access.log")
        conf = os.path.join(work, "nginx-deb.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 2; daemon off; pid %s/nginx-deb.pid; error_log %s/nginx-deb.err;
events { worker_connections 4096; }
http { access_log %s; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  server { listen 127.0.0.1:%d; root %s; } }
""" % (work, work, self.log, work, work, work, work, work, self.port, root))
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", work], stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def requests(self):
        try:
            with open(self.log) as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait()


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def peak_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed(cmd, **kw):
    """Runs cmd under /usr/bin/time: (seconds, peak RSS MiB)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, **kw)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (cmd[0], p.stderr[-2000:]))
    return dt, int(p.stderr.strip().splitlines()[-1]) / 1024


def pulp_sync(pulp, upstream, name, policy, runs_mirror=False):
    remote = pulp.call("POST", "/pulp/api/v3/remotes/deb/apt/",
                       {"name": name, "url": upstream, "distributions": "stable",
                        "policy": policy})
    repo = pulp.call("POST", "/pulp/api/v3/repositories/deb/apt/",
                     {"name": name, "remote": remote["pulp_href"]})
    return repo


class Split:
    """`pulp-rs api` and `pulp-rs worker` as two processes on one data directory: the worker
    alone runs the sync, as aptly's one process does, so its peak RSS is the one to compare."""

    def __init__(self, work):
        self.api = Pulp(work, which="api")
        self.data = self.api.data
        self.proc = Pulp(work, data=self.data, which="worker").proc

    def call(self, *a):
        return self.api.call(*a)

    def wait_task(self, href):
        return self.api.wait_task(href)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        self.api.stop()


def pulp_sync_once(pulp, repo):
    """(seconds, peak RSS MiB of the process that ran the sync: `serve`, or the worker)."""
    reset_peak(pulp.proc.pid)
    task = pulp.call("POST", repo["pulp_href"] + "sync/", {})["task"]
    done = pulp.wait_task(task)
    if done["state"] != "completed":
        raise SystemExit("sync failed: %s" % json.dumps(done)[:2000])
    return task_seconds(done), peak_mib(pulp.proc.pid)


def task_seconds(task):
    """From the task's creation (the POST) to its end, by the server's own clock: polling the
    task every 50 ms would round every figure up to the next poll."""
    t = lambda k: datetime.datetime.fromisoformat(task[k].replace("Z", "+00:00"))
    return (t("finished_at") - t("pulp_created")).total_seconds()


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def small(args, work):
    up = os.path.join(work, "upstream")
    write_repo(up, args.packages, args.deb_kib)
    nginx = LoggingNginx(up, work)
    modes = [m for m in args.processes.split(",") if m]
    keys = []
    for m in modes:
        keys += ["%s immediate" % m, "%s on_demand" % m, "%s re-sync" % m]
    res = {k: {"s": [], "rss": [], "req": []} for k in keys + ["aptly", "debmirror"]}
    try:
        for run in range(args.runs):
            for mode in modes:
                pulp = Pulp(work) if mode == "serve" else Split(work)
                try:
                    for policy in ("immediate", "on_demand"):
                        repo = pulp_sync(pulp, nginx.url(), "r%d-%s" % (run, policy), policy)
                        n0 = nginx.requests()
                        dt, rss = pulp_sync_once(pulp, repo)
                        r = res["%s %s" % (mode, policy)]
                        r["s"].append(dt); r["rss"].append(rss); r["req"].append(nginx.requests() - n0)
                        if policy == "immediate":
                            n0 = nginx.requests()
                            dt, rss = pulp_sync_once(pulp, repo)
                            r = res["%s re-sync" % mode]
                            r["s"].append(dt); r["rss"].append(rss); r["req"].append(nginx.requests() - n0)
                finally:
                    pulp.stop()
                    shutil.rmtree(pulp.data, ignore_errors=True)
            aptly_root = os.path.join(work, "aptly-%d" % run)
            conf = os.path.join(work, "aptly-%d.conf" % run)
            with open(conf, "w") as f:
                json.dump({"rootDir": aptly_root, "downloadConcurrency": 10}, f)
            n0 = nginx.requests()
            t1, m1 = timed(["aptly", "-config=" + conf, "mirror", "create", "-ignore-signatures",
                            "-architectures=amd64,all", "m", nginx.url(), "stable", "main"])
            t2, m2 = timed(["aptly", "-config=" + conf, "mirror", "update", "-ignore-signatures", "m"])
            r = res["aptly"]
            r["s"].append(t1 + t2); r["rss"].append(max(m1, m2)); r["req"].append(nginx.requests() - n0)
            shutil.rmtree(aptly_root, ignore_errors=True)
            dm = os.path.join(work, "debmirror-%d" % run)
            n0 = nginx.requests()
            t, m = timed(["debmirror", "--host=127.0.0.1:%d" % nginx.port, "--root=/",
                          "--method=http", "--dist=stable", "--section=main", "--arch=amd64",
                          "--nosource", "--no-check-gpg", "--diff=none", "--i18n", "--getcontents",
                          "--rsync-extra=none", dm])
            r = res["debmirror"]
            r["s"].append(t); r["rss"].append(m); r["req"].append(nginx.requests() - n0)
            shutil.rmtree(dm, ignore_errors=True)
    finally:
        nginx.stop()
    base = med(res["aptly"]["s"])
    print("\n%d packages x %d KiB, medians of %d runs (ratio: time / aptly's)" %
          (args.packages, args.deb_kib, args.runs))
    print("(serve: peak RSS of the whole `pulp-rs serve`; worker: of a `pulp-rs worker` process "
          "beside `pulp-rs api`)")
    print("%-20s %9s %8s %10s %9s" % ("", "seconds", "ratio", "peak MiB", "requests"))
    for k, r in res.items():
        k = k.replace("split", "worker")
        print("%-20s %9.3f %8.2f %10.1f %9d" % (k, med(r["s"]), med(r["s"]) / base, med(r["rss"]),
                                               int(med(r["req"]))))
    return res


def big(args, work):
    up = os.path.join(work, "upstream-big")
    write_repo(up, args.big, 64, real_files=False)
    nginx = LoggingNginx(up, work)
    mode = args.processes.split(",")[-1]
    pulp = Pulp(work) if mode == "serve" else Split(work)
    try:
        repo = pulp_sync(pulp, nginx.url(), "big", "on_demand")
        dt, rss = pulp_sync_once(pulp, repo)
        print("\n%d stanzas on_demand (%s process): sync %.2f s, peak RSS %.1f MiB"
              % (args.big, mode.replace("split", "worker"), dt, rss))
        r = pulp.call("GET", repo["pulp_href"])
        reset_peak(pulp.proc.pid)
        task = pulp.call("POST", "/pulp/api/v3/publications/deb/apt/",
                         {"repository": r["pulp_href"], "structured": True})["task"]
        done = pulp.wait_task(task)
        if done["state"] != "completed":
            raise SystemExit("publish failed: %s" % json.dumps(done)[:2000])
        pt = task_seconds(done)
        print("structured publication of %d packages: %.2f s, peak RSS %.1f MiB"
              % (args.big, pt, peak_mib(pulp.proc.pid)))
    finally:
        pulp.stop()
        nginx.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--packages", type=int, default=4000)
    ap.add_argument("--deb-kib", type=int, default=4)
    ap.add_argument("--big", type=int, default=60000)
    ap.add_argument("--only", default="small,big")
    ap.add_argument("--processes", default="serve,split",
                    help="serve: one `pulp-rs serve`; split: `pulp-rs api` + `pulp-rs worker`, "
                         "RSS of the worker (big: the last one listed)")
    ap.add_argument("--work", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit("build first: cargo build --release (%s)" % BIN)
    work = tempfile.mkdtemp(prefix="deb-figures-", dir=args.work)
    try:
        if "small" in args.only:
            small(args, work)
        if "big" in args.only:
            big(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
