"""Replica Auditor against Cloud Custodian, side by side, in one run.

Run by `make bench` (see the README's Performance section). It builds its
own world on 127.0.0.1 and stops everything it starts:

- moto server (tests/moto/moto_shim.py) as the AWS API, seeded here;
- bench/latency-proxy between every client and moto, holding each whole
  HTTP request for a fixed delay (real AWS round trips); both tools go
  through it, and it counts every call by service, action and Region;
- the auditor's release `bootstrap`, run as Lambda runs it, against a small
  Lambda Runtime API served here (so the real binary, cold start included,
  is what is measured);
- Cloud Custodian (`custodian run`, from .venv-bench) with
  bench/custodian.yml, its closest equivalent policy.

Figures (medians of BENCH_RUNS runs, default 3) go to bench/results.md and
bench/results.json:
1. time to report one CloudTrail event for 1, 3 and 6 replicas, at 25 and
   75 ms per call, and the sequential round trips (the slope over the delay);
2. sweeps of 300 and 1,000 secrets at 100 ms: wall and CPU for both tools,
   the secrets each found, and the bound moto and the proxy impose;
3. the auditor's sweep at 100, 1,000 and 5,000 secrets;
4. cold start and peak RSS, against Custodian's Lambda cold path;
5. the stripped bootstrap and its zip;
6. AWS calls per audited event against the minimum the checks need;
and issue 17's: 2b, 7, 8 (the cheapest Custodian policy, each tool at its
Lambda CPU share, the cold path over TLS; bench/lambda_share.py) and 3b (the
org sweep against c7n-org; bench/orgwide.py).

Usage: bench.py BOOTSTRAP PROXY CUSTODIAN_PYTHON   (paths to the binaries;
       BOOTSTRAP is the Lambda binary, target/release/replica-auditor-lambda)
       bench.py --event-only BOOTSTRAP PROXY      (1, 4, 5, 6; printed only)
       bench.py --lambda-share|--org BOOTSTRAP PROXY CUSTODIAN_PYTHON
                (2b, 7, 8 | 3b alone, merged into bench/results.json and
                bench/results.md: the other figures are kept)
Environment: BENCH_RUNS (3), BENCH_CUSTODIAN_RUNS (BENCH_RUNS),
BENCH_SIZES ("300,1000"), BENCH_SCALE ("100,1000,5000").
"""

import hashlib
import http.server
import io
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "moto"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
import world as test_world  # noqa: E402  (tests/moto/world.py: key policy, findings inbox)
from local_stack import drain, free_port, rss_kib, start, stop, wait_for_port  # noqa: E402
OUT = ROOT / "target" / "bench"
ACCOUNT = "123456789012"
PRIMARY = "us-west-2"
REPLICA_REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1"]
SWEEP_REPLICAS = ["us-east-1", "eu-west-1"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/replica-auditor-bench"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CUSTODIAN_RUNS = int(os.environ.get("BENCH_CUSTODIAN_RUNS", str(RUNS)))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "300,1000").split(",")]
SCALE = [int(s) for s in os.environ.get("BENCH_SCALE", "100,1000,5000").split(",")]
CUSTODIAN_POLICY = ROOT / "bench/custodian.yml"
CUSTODIAN_CHEAPEST = ROOT / "bench/custodian-cheapest.yml"
EVENT_DELAYS = (25, 75)
SWEEP_DELAY = 100
# Lambda's provided.al2023 image trusts one CA bundle file
# (/etc/pki/tls/certs/ca-bundle.crt). Debian's /etc/ssl/certs also holds
# every certificate again as its own file, which the SDK's native-roots
# loader reads one by one (about 3.5 ms more at start). The auditor runs with
# Lambda's layout here, the bundle only; figure 4 shows both.
CERT_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
LAMBDA_CERTS = {"SSL_CERT_FILE": CERT_BUNDLE, "SSL_CERT_DIR": str(OUT / "no-cert-dir")}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# --- the AWS side: moto behind the latency proxy ------------------------------------


class World:
    """moto (with the test shim) and the latency proxy in front of it."""

    def __init__(self, proxy_bin):
        OUT.mkdir(parents=True, exist_ok=True)
        self.moto_port = free_port()
        self.moto = start(
            [sys.executable, str(ROOT / "tests/moto/moto_shim.py"), "-p", str(self.moto_port)],
            open(OUT / "moto.log", "w"),
        )
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        wait_for_port(self.moto_port, "moto", self.moto, timeout=30)
        self.proxy = subprocess.Popen(
            [proxy_bin, str(self.moto_port)], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.proxy_url = f"http://127.0.0.1:{self.proxy.stdout.readline().strip()}"

    def stop(self):
        stop(self.proxy)
        stop(self.moto)

    def client(self, service, region=PRIMARY):
        """A client straight to moto (seeding and reading back, never timed)."""
        return test_world.client(service, region, self.moto_url)

    def control(self, path, method="GET"):
        req = urllib.request.Request(self.proxy_url + "/__proxy/" + path, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def set_delay(self, ms):
        self.control(f"delay?ms={ms}", "POST")

    def reset(self):
        self.control("reset", "POST")

    def stats(self):
        return self.control("stats")

    def topic_with_inbox(self):
        self.topic, self.queue_url = test_world.findings_inbox(self.moto_url)
        return self.topic

    def drain(self):
        """Every report published so far (read from the SQS subscriber)."""
        return [json.loads(m["Message"]) for m in drain(self.moto_url, self.queue_url)]

    def key(self, region):
        policy = test_world.own_policy()  # the account's root, as a default key policy
        kms = self.client("kms", region)
        arn = kms.create_key(Description="bench", Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName="alias/bench-app", TargetKeyId=arn)
        return arn


def seed_event_secrets(world):
    """bench/replicas-N for N in 1, 3, 6: customer keys everywhere, the last
    replica Failed on a name clash (so there is a finding to publish)."""
    keys = {r: world.key(r) for r in [PRIMARY, *REPLICA_REGIONS]}
    secrets = {}
    for n in (1, 3, 6):
        name = f"bench/replicas-{n}"
        regions = REPLICA_REGIONS[:n]
        world.client("secretsmanager", regions[-1]).create_secret(Name=name, SecretString="someone else's")
        secrets[n] = world.client("secretsmanager").create_secret(
            Name=name,
            SecretString="never read",
            KmsKeyId=keys[PRIMARY],
            AddReplicaRegions=[{"Region": r, "KmsKeyId": keys[r]} for r in regions],
        )["ARN"]
    return keys, secrets


def seed_sweep_secrets(world, count, failed_only=False):
    """`count` secrets with two replicas on customer keys; every tenth is
    broken, alternately a name clash (Failed) and a replica left on the
    AWS-managed key (weaker than its primary's); with `failed_only`, every
    broken one is a name clash. Returns the broken names."""
    keys = {r: world.key(r) for r in [PRIMARY, *SWEEP_REPLICAS]}
    broken = set()
    sm = {r: world.client("secretsmanager", r) for r in [PRIMARY, *SWEEP_REPLICAS]}

    def one(i):
        name = f"sweep/secret-{i:05d}"
        replicas = [{"Region": r, "KmsKeyId": keys[r]} for r in SWEEP_REPLICAS]
        if i % 20 == 3 or (failed_only and i % 10 == 3):
            sm[SWEEP_REPLICAS[0]].create_secret(Name=name, SecretString="someone else's")
        elif i % 20 == 13:
            replicas[0] = {"Region": SWEEP_REPLICAS[0]}
        sm[PRIMARY].create_secret(Name=name, SecretString="never read", KmsKeyId=keys[PRIMARY], AddReplicaRegions=replicas)
        return name if i % 10 == 3 else None

    # One request at a time: moto's backends are not thread-safe, and
    # seeding from 8 threads left some 80 of 5,000 secrets half-made
    # (replicas registered, the primary never finished), which then failed
    # every call that touched them.
    return {n for n in map(one, range(count)) if n}


# --- the auditor, run as Lambda runs it -----------------------------------------------


class RuntimeApi:
    """The Lambda Runtime API (the part a custom runtime uses), on 127.0.0.1.
    Times each invocation from the moment the event is handed out to the
    moment the function posts its response."""

    def __init__(self):
        self.events = queue.Queue()
        self.done = queue.Queue()
        self.ready = threading.Event()
        self.ready_at = None
        self.started = {}
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def send(self, status, body=b"", headers=()):
                head = [f"HTTP/1.1 {status} OK", f"Content-Length: {len(body)}", "Content-Type: application/json", *headers]
                self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.send(404)
                if not api.ready.is_set():
                    api.ready_at = time.perf_counter()
                    api.ready.set()
                body, timeout = api.events.get()
                request_id = str(uuid.uuid4())
                deadline = int((time.time() + timeout) * 1000)
                headers = [
                    f"Lambda-Runtime-Aws-Request-Id: {request_id}",
                    f"Lambda-Runtime-Deadline-Ms: {deadline}",
                    f"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:{PRIMARY}:{ACCOUNT}:function:replica-auditor",
                    "Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0",
                ]
                api.started[request_id] = time.perf_counter()
                self.send(200, body, headers)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.perf_counter()
                parts = self.path.split("/")
                api.last_done = now
                if "invocation" in parts:
                    request_id, outcome = parts[-2], parts[-1]
                    api.done.put((now - api.started.pop(request_id), outcome, body))
                else:
                    api.done.put((0.0, "init-error", body))
                self.send(202, b"{}")

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A stopped function drops its waiting `next` connection.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event, timeout=900):
        self.events.put((json.dumps(event).encode(), timeout))
        seconds, outcome, body = self.done.get(timeout=timeout + 60)
        if outcome != "response":
            raise RuntimeError(f"invocation failed ({outcome}): {body[:500]!r}")
        return seconds, json.loads(body)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Auditor:
    """One execution environment: the bootstrap process and its Runtime API."""

    def __init__(self, bootstrap, world, certs=LAMBDA_CERTS, share=None, endpoint=None, **env):
        """`share`: a lambda_share.CpuShare the process runs in (its memory
        is then the function's memory); `endpoint`: instead of the proxy's."""
        self.api = RuntimeApi()
        (OUT / "no-cert-dir").mkdir(parents=True, exist_ok=True)
        self.logfile = open(OUT / "auditor.log", "ab")
        environment = {
            "PATH": os.environ.get("PATH", ""),
            **CREDS,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "replica-auditor",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(share.memory_mb if share else 128),
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/replica-auditor",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_REGION": PRIMARY,
            "AWS_ENDPOINT_URL": endpoint or world.proxy_url,
            "FINDINGS_TOPIC_ARN": world.topic,
            "AUDITOR_ROLE_ARN": ROLE,
            "REMEDIATION": "off",
            **certs,
            **env,
        }
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [bootstrap], env=environment, stdout=self.logfile, stderr=self.logfile, preexec_fn=share.preexec() if share else None
        )
        if not self.api.ready.wait(30):
            raise RuntimeError("the auditor never asked for an event; see target/bench/auditor.log")
        self.cold_start = self.api.ready_at - self.t0

    def since_start(self):
        """From the process's start to its last response."""
        return self.api.last_done - self.t0

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """Stop the process; its whole-life (cpu seconds, peak RSS KiB).
        Peak RSS is VmHWM: wait4's ru_maxrss would carry this Python
        process's size over the fork and exec."""
        peak = rss_kib(self.proc.pid, "VmHWM")
        self.proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        self.api.stop()
        self.logfile.close()
        return usage.ru_utime + usage.ru_stime, peak


def cloudtrail_event(name, arn, regions, keys):
    event = json.loads((ROOT / "events/replicate-secret-to-regions.json").read_text())
    event["id"] = str(uuid.uuid4())
    detail = event["detail"]
    detail["eventID"] = str(uuid.uuid4())
    detail["requestParameters"] = {
        "secretId": name,
        "addReplicaRegions": [{"region": r, "kmsKeyId": keys[r]} for r in regions],
        "forceOverwriteReplicaSecret": False,
    }
    detail["responseElements"] = {
        "arn": arn,
        "replicationStatus": [{"region": r, "kmsKeyId": keys[r], "status": "InProgress"} for r in regions],
    }
    return event


def sweep_event():
    """The sample scheduled event, with a new id and the time it fires (as
    EventBridge sends it: the org sweep's policy ledger marks that time)."""
    event = json.loads((ROOT / "events/scheduled-sweep.json").read_text())
    event["id"] = str(uuid.uuid4())
    event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return event


# The policy ledger (README "Resource policies between sweeps") reads a
# secret's policy when it changed after the last complete sweep started,
# less 5 minutes for clock skew. A sweep measured right after seeding would
# see every secret as changed; the benchmarks let this long pass between
# the last secret made and the first (unmeasured) sweep, so that the
# measured sweeps see the steady state: only their refresh share is read.
SETTLE_S = int(os.environ.get("BENCH_SETTLE_S", "310"))
# SWEEP_POLICY_REFRESH values the sweep figures compare: 1 (every policy
# every sweep, as before the ledger), the default 4, and 24.
POLICY_REFRESH = [int(r) for r in os.environ.get("BENCH_POLICY_REFRESH", "1,4,24").split(",")]
DEFAULT_POLICY_REFRESH = 4


def settle(since):
    """Wait until SETTLE_S have passed since `since` (time.time())."""
    left = since + SETTLE_S - time.time()
    if left > 0:
        log(f"waiting {left:.0f}s: the secrets must have last changed over 5 min before the first sweep")
        time.sleep(left)


# --- Cloud Custodian ---------------------------------------------------------------------


def custodian_run(custodian_python, world, workdir, policy=CUSTODIAN_POLICY, share=None):
    """One `custodian run` of `policy` (bench/custodian.yml unless given),
    in `share` (a lambda_share.CpuShare) when given: wall, CPU (user+sys)
    and the names it matched."""
    out = Path(workdir) / f"run-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        **CREDS,
        "AWS_DEFAULT_REGION": PRIMARY,
        "AWS_ENDPOINT_URL": world.proxy_url,
    }
    cmd = [custodian_python, "-m", "c7n.cli", "run", "--cache-period", "0", "-r", PRIMARY, "-s", str(out), str(policy)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=share.preexec() if share else None
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"custodian failed: {output.decode(errors='replace')[-2000:]}")
    name = "secret-replication-audit" if policy == CUSTODIAN_POLICY else "secret-replication-failed"
    found = json.loads((out / name / "resources.json").read_text())
    return wall, usage.ru_utime + usage.ru_stime, {r["Name"] for r in found}


CUSTODIAN_COLD = """
import c7n.handler                              # its Lambda entry point
from c7n.config import Config
from c7n.policy import load as load_policies
from c7n.resources import load_resources
import boto3
load_resources(("aws.secrets-manager", "aws.kms-key"))
policies = load_policies(Config.empty(), "{policy}")
session = boto3.Session(region_name="{region}")
clients = [session.client(s) for s in ("secretsmanager", "kms", "sns")]
print("ready", flush=True)
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1], flush=True)
"""


def custodian_cold(custodian_python, world):
    env = {"PATH": os.environ.get("PATH", ""), **CREDS, "AWS_DEFAULT_REGION": PRIMARY, "AWS_ENDPOINT_URL": world.proxy_url}
    code = CUSTODIAN_COLD.format(policy=ROOT / "bench/custodian.yml", region=PRIMARY)
    t0 = time.perf_counter()
    proc = subprocess.Popen([custodian_python, "-c", code], env=env, stdout=subprocess.PIPE)
    line = proc.stdout.readline()
    ready = time.perf_counter() - t0
    assert line.strip() == b"ready", line
    peak = int(proc.stdout.readline())
    proc.wait()
    return ready, peak


# --- the figures ----------------------------------------------------------------------


def per_event(bootstrap, proxy):
    """Figures 1 and 6, and the cold start and RSS of figure 4."""
    world = World(proxy)
    try:
        world.topic_with_inbox()
        keys, secrets = seed_event_secrets(world)
        events = {n: cloudtrail_event(f"bench/replicas-{n}", secrets[n], REPLICA_REGIONS[:n], keys) for n in (1, 3, 6)}

        # Cold start and the peak RSS of a whole invocation, fresh each run,
        # with Lambda's certificate layout and with this machine's.
        colds, rss = {"lambda": [], "debian": []}, []
        world.set_delay(EVENT_DELAYS[0])
        for _ in range(max(RUNS, 15)):
            for layout, certs in (("lambda", LAMBDA_CERTS), ("debian", {})):
                auditor = Auditor(bootstrap, world, certs=certs)
                colds[layout].append(auditor.cold_start)
                auditor.api.invoke(events[6], timeout=30)
                rss.append(auditor.stop()[1])
        world.drain()

        # Warm invocations: time to report, and calls counted at the proxy.
        auditor = Auditor(bootstrap, world)
        rows = warm_rows(auditor, world, events, lambda n: 3 * n + 5)
        auditor.stop()
        reports = world.drain()
        published = sum(1 for r in reports if any(f["code"] == "REPLICA_FAILED" for f in r["findings"]))
    finally:
        world.stop()
    return {
        "events": rows,
        "reports_published": published,
        "cold_start_ms": median(colds["lambda"]) * 1000,
        "cold_start_ms_debian_certs": median(colds["debian"]) * 1000,
        "cold_start_ms_all": {k: [c * 1000 for c in v] for k, v in colds.items()},
        "peak_rss_kib": median(rss),
        "peak_rss_kib_all": rss,
    }


def warm_rows(auditor, world, events, minimum):
    """Warm invocations of `events` (by replica count) at each of
    EVENT_DELAYS: per replica count, the median time to report at each
    delay, the sequential round trips (the slope over the delay), the calls
    at the proxy and `minimum(n)`."""
    auditor.api.invoke(events[max(events)], timeout=30)  # warm-up, not counted
    times, calls, connections = {}, {}, {}
    for delay in EVENT_DELAYS:
        world.set_delay(delay)
        for n in events:
            samples = []
            for _ in range(RUNS):
                world.reset()
                seconds, _ = auditor.api.invoke(events[n], timeout=30)
                samples.append(seconds)
                stats = world.stats()
                calls[n] = stats["calls"]
                connections[n] = connections.get(n, 0) + stats["connections"]
            times[(n, delay)] = median(samples)
    lo, hi = EVENT_DELAYS
    rows = []
    for n in events:
        slope = (times[(n, hi)] - times[(n, lo)]) / ((hi - lo) / 1000)
        rows.append({"replicas": n, f"ms_at_{lo}": times[(n, lo)] * 1000, f"ms_at_{hi}": times[(n, hi)] * 1000, "round_trips": slope, "calls": calls[n], "minimum_calls": minimum(n), "new_connections": connections[n]})
    return rows


def put_secret_value_event(name, arn):
    """events/put-secret-value.json naming `name` (`arn`), with new ids."""
    event = json.loads((ROOT / "events/put-secret-value.json").read_text())
    event["id"] = str(uuid.uuid4())
    detail = event["detail"]
    detail["eventID"] = str(uuid.uuid4())
    detail["requestParameters"]["secretId"] = name
    detail["responseElements"].update({"aRN": arn, "name": name})
    return event


def new_version(bootstrap, proxy):
    """A new-version event (PutSecretValue) in the primary Region with the
    follow-up chain on (STATE_TABLE, FOLLOW_UP_QUEUE_URL): its first look's
    sequential round trips (issue 25: at most 3.5). The chain's conditional
    write and its first message go beside the publish; the remediation
    journal's read beside the first DescribeSecret."""
    world = World(proxy)
    try:
        world.topic_with_inbox()
        table = test_world.state_table(world.moto_url)
        queue = world.client("sqs").create_queue(QueueName="replica-auditor-follow-up")["QueueUrl"]
        _, secrets = seed_event_secrets(world)
        events = {n: put_secret_value_event(f"bench/replicas-{n}", secrets[n]) for n in (1, 3, 6)}
        world.set_delay(EVENT_DELAYS[0])
        auditor = Auditor(bootstrap, world, STATE_TABLE=table, FOLLOW_UP_QUEUE_URL=queue)
        # 3n+5 as above, plus the journal's GetItem, the chain's UpdateItem and SendMessage.
        rows = warm_rows(auditor, world, events, lambda n: 3 * n + 8)
        auditor.stop()
    finally:
        world.stop()
    return rows


def auditor_sweep(bootstrap, world, delay, share=None, **env):
    world.set_delay(delay)
    world.drain()
    world.reset()
    auditor = Auditor(bootstrap, world, share=share, SWEEP_REGIONS=PRIMARY, **env)
    seconds, summary = auditor.api.invoke(sweep_event())
    cold_total = auditor.since_start()
    cpu, rss = auditor.stop()
    requests = world.stats()["requests"]
    found = {r["secret"]["name"] for r in world.drain() if r.get("sweep") is None and r["findings"]}
    return {"wall": seconds, "cold_total": cold_total, "cpu": cpu, "rss_kib": rss, "requests": requests, "found": found, "summary": summary}


def sweeps(bootstrap, proxy, custodian_python):
    """Figures 2 and 3."""
    results, scale = {}, {}
    workdir = tempfile.mkdtemp(prefix="c7n-bench-")
    try:
        for count in sorted(set(SIZES) | set(SCALE)):
            world = World(proxy)
            try:
                world.topic_with_inbox()
                t = time.perf_counter()
                broken = seed_sweep_secrets(world, count)
                log(f"seeded {count} secrets ({len(broken)} broken) in {time.perf_counter() - t:.1f}s")
                # The moto bound: the same sweep with no delay at all.
                free = auditor_sweep(bootstrap, world, 0)
                runs = [auditor_sweep(bootstrap, world, SWEEP_DELAY) for _ in range(RUNS)]
                mine = {
                    "wall": median([r["wall"] for r in runs]),
                    "cpu": median([r["cpu"] for r in runs]),
                    "rss_kib": median([r["rss_kib"] for r in runs]),
                    "requests": runs[0]["requests"],
                    "found_expected": all(r["found"] == broken for r in runs),
                    "found": len(runs[0]["found"]),
                    "moto_requests_per_second": free["requests"] / free["wall"],
                    "wall_at_0ms": free["wall"],
                }
                log(f"auditor {count}: {mine['wall']:.2f}s wall, {mine['cpu']:.2f}s cpu, {mine['requests']} calls")
                scale[count] = mine
                if count in SIZES:
                    world.set_delay(SWEEP_DELAY)
                    theirs = []
                    for _ in range(CUSTODIAN_RUNS):
                        world.reset()
                        theirs.append(custodian_run(custodian_python, world, workdir))
                    c = {
                        "wall": median([w for w, _, _ in theirs]),
                        "cpu": median([u for _, u, _ in theirs]),
                        "found": len(theirs[0][2]),
                        "found_expected": all(f == broken for _, _, f in theirs),
                        "requests": world.stats()["requests"],
                    }
                    log(f"custodian {count}: {c['wall']:.2f}s wall, {c['cpu']:.2f}s cpu, {c['requests']} calls")
                    results[count] = {"broken": len(broken), "auditor": mine, "custodian": c}
            finally:
                world.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results, scale


# --- issue 17: the cheapest Custodian policy, Lambda's CPU share, TLS -------------------

# What each tool gets at its Lambda default memory: the auditor's template
# says 128 MB; Custodian's `mu` deploys policies with 512 MB unless told.
AUDITOR_MEMORY = 128
CUSTODIAN_MEMORY = 512
MEMORY_CURVE = [int(m) for m in os.environ.get("BENCH_MEMORY", "128,256,512,1024").split(",")]


def summarise_sweeps(runs):
    return {
        "wall": median([r["wall"] for r in runs]),
        "cold_total": median([r["cold_total"] for r in runs]),
        "cpu": median([r["cpu"] for r in runs]),
        "requests": runs[0]["requests"],
        "found": len(runs[0]["found"]),
        "found_expected": all(r["found"] == runs[0]["expected"] for r in runs),
    }


def custodian_sweeps(custodian_python, world, workdir, broken, share=None):
    world.set_delay(SWEEP_DELAY)
    theirs = []
    for _ in range(CUSTODIAN_RUNS):
        world.reset()
        theirs.append(custodian_run(custodian_python, world, workdir, policy=CUSTODIAN_CHEAPEST, share=share))
    return {
        "wall": median([w for w, _, _ in theirs]),
        "cpu": median([u for _, u, _ in theirs]),
        "found": len(theirs[0][2]),
        "found_expected": all(f == broken for _, _, f in theirs),
        "requests": world.stats()["requests"],
    }


def lambda_share(bootstrap, proxy, custodian_python):
    """Figures 2b and 7: sweeps against Custodian's cheapest policy, free and
    at each tool's Lambda CPU share; the auditor's memory curve.

    The auditor runs as deployed, with its state table: one unmeasured sweep
    (SETTLE_S after the last secret was made) leaves the policy ledger, and
    each measured sweep then reads the policies its SWEEP_POLICY_REFRESH
    share names (every one at 1)."""
    from lambda_share import CpuShare, can_cap

    if not can_cap():
        raise SystemExit("figures 2b and 7 need root and the cgroup v1 CPU controller (/sys/fs/cgroup/cpu)")
    out = {"free": {}, "capped": {}, "memory": {}, "policy_refresh": POLICY_REFRESH, "default_policy_refresh": DEFAULT_POLICY_REFRESH}
    workdir = tempfile.mkdtemp(prefix="c7n-bench-")
    worlds = {}
    try:
        for count in SIZES:
            world = worlds[count] = World(proxy)
            world.topic_with_inbox()
            world.state_table = test_world.state_table(world.moto_url)
            world.broken = seed_sweep_secrets(world, count, failed_only=True)
            log(f"seeded {count} secrets, {len(world.broken)} Failed (figures 2b, 7)")
        seeded = time.time()
        # Custodian first: it keeps no state, and the wait shrinks.
        for count, world in worlds.items():
            out["free"][count] = {"broken": len(world.broken), "custodian": custodian_sweeps(custodian_python, world, workdir, world.broken)}
            with CpuShare(CUSTODIAN_MEMORY) as share:
                out["capped"][count] = {"broken": len(world.broken), "custodian": custodian_sweeps(custodian_python, world, workdir, world.broken, share)}
        settle(seeded)
        for count, world in worlds.items():
            broken = world.broken

            def mine(share=None, refresh=DEFAULT_POLICY_REFRESH):
                runs = [
                    auditor_sweep(bootstrap, world, SWEEP_DELAY, share=share, STATE_TABLE=world.state_table, SWEEP_POLICY_REFRESH=str(refresh))
                    for _ in range(RUNS)
                ]
                return summarise_sweeps([{**r, "expected": broken} for r in runs])

            first = auditor_sweep(bootstrap, world, 0, STATE_TABLE=world.state_table)
            log(f"first sweep of {count} (no ledger yet, at 0 ms): {first['wall']:.2f}s, {first['summary']['sweep'].get('resource_policies_read')} policies read")
            free = out["free"][count]
            free["first_sweep"] = {"wall_at_0ms": first["wall"], "policies_read": first["summary"]["sweep"].get("resource_policies_read")}
            free["auditor_by_refresh"] = {str(r): mine(refresh=r) for r in POLICY_REFRESH}
            free["auditor"] = free["auditor_by_refresh"].get(str(DEFAULT_POLICY_REFRESH)) or mine()
            log(f"free {count}: {free}")
            capped = out["capped"][count]
            capped["auditor_by_refresh"] = {}
            for r in POLICY_REFRESH:
                if r == 1:
                    continue  # measured free above; at the CPU share it is the same pace floor
                with CpuShare(AUDITOR_MEMORY) as share:
                    capped["auditor_by_refresh"][str(r)] = mine(share, refresh=r)
            capped["auditor"] = capped["auditor_by_refresh"].get(str(DEFAULT_POLICY_REFRESH))
            if capped["auditor"] is None:
                with CpuShare(AUDITOR_MEMORY) as share:
                    capped["auditor"] = mine(share)
            a, c = capped["auditor"], capped["custodian"]
            log(f"capped {count}: auditor {a['wall']:.2f}s ({a['cold_total']:.2f}s from process start), custodian {c['wall']:.2f}s")
            if count == max(SIZES):
                for mb in MEMORY_CURVE:
                    with CpuShare(mb) as share:
                        m = mine(share)
                    # Lambda bills duration by the millisecond, times memory.
                    m["gb_seconds"] = mb / 1024 * m["cold_total"]
                    out["memory"][mb] = m
                    log(f"memory {mb} MB: {m['cold_total']:.2f}s, {m['gb_seconds']:.3f} GB-s")
    finally:
        for world in worlds.values():
            world.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


CUSTODIAN_EVENT_POLICY = """policies:
  - name: secret-replication-event
    resource: aws.secrets-manager
    mode:
      type: cloudtrail
      events:
        - source: secretsmanager.amazonaws.com
          event: ReplicateSecretToRegions
          ids: requestParameters.secretId
    filters:
      - type: value
        key: "ReplicationStatus[].Status"
        op: contains
        value: Failed
    actions:
      - type: notify
        subject: replica-auditor bench
        violation_desc: replication failed
        to: [ops@example.com]
        transport:
          type: sns
          topic: {topic}
"""

# Custodian's Lambda cold path, as its handler runs it: Python starts,
# imports c7n.handler, and dispatch_event reads config.json (the policy and
# execution options `mu` packages), loads the resource types, resolves the
# event's secret (DescribeSecret), filters and notifies through SNS.
CUSTODIAN_EVENT = """
import json, sys
import c7n.handler
c7n.handler.dispatch_event(json.load(open(sys.argv[1])), None)
"""


def custodian_event_cold(custodian_python, endpoint, ca, topic, event, share):
    """Seconds from Python's start to the end of Custodian's handling of one event."""
    workdir = Path(tempfile.mkdtemp(prefix="c7n-event-"))
    try:
        # config.json as `mu` packages it: the policy (YAML read with
        # Custodian's own Python, which has PyYAML) and execution options.
        (workdir / "policy.yml").write_text(CUSTODIAN_EVENT_POLICY.format(topic=topic))
        convert = subprocess.run(
            [os.path.abspath(custodian_python), "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", str(workdir / "policy.yml")],
            capture_output=True, text=True, check=True,
        )
        config = json.loads(convert.stdout)
        config["execution-options"] = {"account_id": ACCOUNT, "output_dir": "/tmp", "region": PRIMARY}
        (workdir / "config.json").write_text(json.dumps(config))
        (workdir / "event.json").write_text(json.dumps(event))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), **CREDS, "AWS_DEFAULT_REGION": PRIMARY,
               "AWS_REGION": PRIMARY, "AWS_ENDPOINT_URL": endpoint, "AWS_CA_BUNDLE": str(ca), "C7N_CATCH_ERR": "no"}
        t0 = time.perf_counter()
        proc = subprocess.run([os.path.abspath(custodian_python), "-c", CUSTODIAN_EVENT, "event.json"], cwd=workdir, env=env,
                              capture_output=True, preexec_fn=share.preexec())
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or b"error during policy execution" in proc.stderr:
            raise RuntimeError(f"custodian event failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        return seconds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def tls_cold(bootstrap, proxy, custodian_python):
    """Figure 8: process start to published report for one CloudTrail event
    with 3 replicas, at 25 ms per call, over HTTPS, each tool at its Lambda
    CPU share; Custodian's Lambda cold path beside it."""
    from lambda_share import CpuShare, TlsTerminator, can_cap, make_ca

    if not can_cap():
        raise SystemExit("figure 8 needs root and the cgroup v1 CPU controller (/sys/fs/cgroup/cpu)")
    ca, cert, key = make_ca(OUT / "tls")
    # Trusted as Lambda's image would trust it: the system's bundle with
    # the throwaway CA appended (the bundle's ~140 certificates are parsed
    # at the first TLS connection too).
    bundle = OUT / "tls" / "bundle.pem"
    bundle.write_text(Path(CERT_BUNDLE).read_text() + Path(ca).read_text())
    world = World(proxy)
    tls = None
    try:
        world.topic_with_inbox()
        keys, secrets = seed_event_secrets(world)
        event = cloudtrail_event("bench/replicas-3", secrets[3], REPLICA_REGIONS[:3], keys)
        tls = TlsTerminator(int(world.proxy_url.rsplit(":", 1)[1]), str(cert), str(key))
        world.set_delay(EVENT_DELAYS[0])
        certs = {"SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(OUT / "no-cert-dir")}
        mine, handshakes, calls = [], [], None
        for _ in range(max(RUNS, 10)):
            world.reset()
            before = tls.handshakes
            with CpuShare(AUDITOR_MEMORY) as share:
                auditor = Auditor(bootstrap, world, certs=certs, share=share, endpoint=tls.url)
                auditor.api.invoke(event, timeout=30)
                mine.append(auditor.since_start())
                auditor.stop()
            handshakes.append(tls.handshakes - before)
            calls = sum(world.stats()["calls"].values())
        published = len(world.drain())
        theirs = []
        for _ in range(max(CUSTODIAN_RUNS, 5)):
            with CpuShare(CUSTODIAN_MEMORY) as share:
                theirs.append(custodian_event_cold(custodian_python, tls.url, bundle, world.topic, event, share))
        return {
            "auditor_ms": median(mine) * 1000,
            "auditor_ms_all": [m * 1000 for m in mine],
            "handshakes": median(handshakes),
            "calls": calls,
            "reports_published": published,
            "custodian_ms": median(theirs) * 1000,
            "custodian_ms_all": [t * 1000 for t in theirs],
        }
    finally:
        if tls:
            tls.stop()
        world.stop()


def size(bootstrap):
    data = Path(bootstrap).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return len(data), len(buf.getvalue())


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    versions = {}
    for name, cmd in {"rustc": ["rustc", "--version"], "custodian": [CUSTODIAN_PY, "-c", "import c7n.version; print(c7n.version.version)"], "moto": [sys.executable, "-c", "import moto; print(moto.__version__)"]}.items():
        versions[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


def event_only(bootstrap, proxy):
    """`make bench-event`: figures 1, 4, 5 and 6 alone (no Custodian, a minute), and a
    new-version event with the follow-up chain on (issue 25)."""
    event = per_event(bootstrap, proxy)
    unzipped, zipped = size(bootstrap)
    lo, hi = EVENT_DELAYS
    print(f"command: make bench-event; {RUNS} runs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for row in event["events"]:
        print(f"{row['replicas']} replicas: {row[f'ms_at_{lo}']:.0f} ms at {lo} ms/call, {row[f'ms_at_{hi}']:.0f} ms at {hi} ms/call, "
              f"{row['round_trips']:.2f} round trips, {sum(row['calls'].values())} calls (minimum {row['minimum_calls']})")
    for row in new_version(bootstrap, proxy):
        print(f"PutSecretValue, {row['replicas']} replicas, follow-up chain on: {row[f'ms_at_{lo}']:.0f} ms at {lo} ms/call, "
              f"{row[f'ms_at_{hi}']:.0f} ms at {hi} ms/call, {row['round_trips']:.2f} round trips, "
              f"{sum(row['calls'].values())} calls (minimum {row['minimum_calls']}): {row['calls']}")
    print(f"cold start {event['cold_start_ms']:.1f} ms ({event['cold_start_ms_debian_certs']:.1f} ms with Debian's certificates); "
          f"peak RSS {event['peak_rss_kib'] / 1024:.1f} MiB; bootstrap {unzipped / 1e6:.2f} MB, zipped {zipped / 1e6:.2f} MB")


def render_share(share, tls, run=None):
    """Figures 2b, 7 and 8 (issue 17) as Markdown lines; `run`: where they
    came from, when `make bench-share` merged them."""
    out = [
        "## 2b. Sweep against Custodian's cheapest policy, 100 ms per call",
        "",
    ]
    if run:
        m = run["machine"]
        out += [
            f"Figures 2b, 7 and 8: produced by `{run['command']}` on {run['date']} ({run['minutes']} min), {run['runs']} run(s); "
            f"machine: {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; Cloud Custodian {m['custodian']}, moto {m['moto']}.",
            "",
        ]
    default = share.get("default_policy_refresh", 4)
    out += [
        "Secrets with two replicas each, a tenth Failed (a name clash). Custodian runs `bench/custodian-cheapest.yml`: one `value` "
        "filter on `ReplicationStatus[].Status`, one DescribeSecret per secret on its thread pool. No CPU cap: both tools use the "
        "machine's cores. Wall is the sweep invocation (auditor) and `custodian run` from start to exit. The auditor runs as "
        "deployed, with its state table, in the steady state: an unmeasured first sweep (no ledger yet: every policy read; "
        f"over 5 minutes after the last secret was made) left the policy ledger, and each measured sweep reads the resource "
        f"policies of its `SWEEP_POLICY_REFRESH` share (README \"Resource policies between sweeps\"; {default} is the default, "
        "1 reads every policy every sweep, as before the ledger).",
        "",
        "| secrets | tool | wall s | CPU s | calls | found (expected) |",
        "|---:|---|---:|---:|---:|---|",
    ]

    def auditors(s):
        by = s.get("auditor_by_refresh") or {str(default): s["auditor"]}
        return [(f"auditor, refresh {r}" + (" (default)" if int(r) == default else ""), t) for r, t in by.items()]

    for count, s in share["free"].items():
        for name, t in [*auditors(s), ("custodian", s["custodian"])]:
            out.append(f"| {count} | {name} | {t['wall']:.2f} | {t['cpu']:.2f} | {t['requests']} | {t['found']} of {s['broken']} ({'same' if t['found_expected'] else 'DIFFERENT'}) |")
    out += ["", "| secrets | auditor | wall ratio (Custodian / auditor) | CPU ratio | goal (5x and 20x) |", "|---:|---|---:|---:|---|"]
    for count, s in share["free"].items():
        for name, t in auditors(s):
            w, c = s["custodian"]["wall"] / t["wall"], s["custodian"]["cpu"] / t["cpu"]
            out.append(f"| {count} | {name} | {w:.1f}x | {c:.1f}x | {'met' if w >= 5 and c >= 20 else 'NOT met'} |")
    firsts = [(count, s["first_sweep"]) for count, s in share["free"].items() if s.get("first_sweep")]
    if firsts:
        out += ["", "The first sweep of each world (no ledger yet, every policy read, no added latency): " + "; ".join(
            f"{count} secrets {f['wall_at_0ms']:.2f} s, {f['policies_read']} policies read" for count, f in firsts) + "."]
    out += [
        "",
        f"## 7. At Lambda's CPU share: the auditor at {AUDITOR_MEMORY} MB, Custodian at {CUSTODIAN_MEMORY} MB, 100 ms per call",
        "",
        "Lambda gives a function CPU in proportion to its memory (a full vCPU at 1,769 MB). Each tool runs in a cgroup v1 CPU "
        f"group with `cpu.cfs_quota_us` = memory / 1,769 x 100,000 us ({AUDITOR_MEMORY} MB: {round(AUDITOR_MEMORY / 1769 * 100000):,}; "
        f"{CUSTODIAN_MEMORY} MB: {round(CUSTODIAN_MEMORY / 1769 * 100000):,}). The same worlds as 2b. "
        "Cold = from the process's start (the auditor's cold start included) to the sweep's response.",
        "",
        "| secrets | auditor | auditor sweep s | auditor cold s | auditor CPU s | Custodian s | ratio (Custodian / auditor cold) | goal (10x at 1,000) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for count, s in share["capped"].items():
        c = s["custodian"]
        for name, a in auditors(s):
            ratio = c["wall"] / a["cold_total"]
            goal = ("met" if ratio >= 10 else "NOT met") if int(count) == 1000 else ""
            out.append(f"| {count} | {name} | {a['wall']:.2f} | {a['cold_total']:.2f} | {a['cpu']:.2f} | {c['wall']:.2f} | {ratio:.1f}x | {goal} |")
    out += [
        "",
        f"The auditor's memory against its cold sweep of {max(SIZES)} secrets (the curve AWS Lambda Power Tuning draws); "
        "GB-s = memory x duration, what Lambda bills:",
        "",
        "| memory MB | CPU share | cold sweep s | CPU s | GB-s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for mb, m in share["memory"].items():
        out.append(f"| {mb} | {int(mb) / 1769:.1%} | {m['cold_total']:.2f} | {m['cpu']:.2f} | {m['gb_seconds']:.3f} |")
    out += [
        "",
        f"## 8. The cold path over TLS: one CloudTrail event, 3 replicas, 25 ms per call, at Lambda's CPU share",
        "",
        "HTTPS to a TLS terminator on 127.0.0.1 (a throwaway CA appended to the system's bundle: the auditor trusts it through "
        "`SSL_CERT_FILE`, Custodian through `AWS_CA_BUNDLE`) in front of the latency proxy. Auditor: from `bootstrap`'s start to its response, which follows "
        f"SNS's answer to the Publish, at {AUDITOR_MEMORY} MB. Custodian: from Python's start through `c7n.handler.dispatch_event` "
        f"(config.json as `mu` packages it; a cloudtrail-mode policy that resolves the secret, filters on ReplicationStatus and notifies "
        f"through SNS) to exit, at {CUSTODIAN_MEMORY} MB; the Lambda Python runtime's own start is not counted.",
        "",
        "| tool | ms (median) | all runs ms | goal |",
        "|---|---:|---|---|",
        f"| auditor | {tls['auditor_ms']:.0f} | {', '.join(f'{x:.0f}' for x in tls['auditor_ms_all'])} | under 300 ms: {'met' if tls['auditor_ms'] < 300 else 'NOT met'} |",
        f"| Custodian | {tls['custodian_ms']:.0f} | {', '.join(f'{x:.0f}' for x in tls['custodian_ms_all'])} | |",
        "",
        f"The auditor made {tls['calls']} calls over {tls['handshakes']:.0f} TLS handshakes per cold run; {tls['reports_published']} reports reached the SNS subscriber.",
        "",
    ]
    return out


def subset_run(command, started):
    """Where a figure subset (bench-share, bench-org) came from: rendered in
    its own section, since bench/results.md keeps the other figures' runs."""
    return {
        "command": os.environ.get("BENCH_COMMAND", command),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "machine": machine(),
    }


def merge_results(update):
    """Merge a figure subset into bench/results.json, keeping every other
    figure, and render bench/results.md again from the whole."""
    path = ROOT / "bench/results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(json.loads(json.dumps(update, default=sorted)))
    path.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "bench/results.md").write_text(render(results))
    return results


def org_figure(bootstrap, proxy, custodian_python, command):
    """Figure 3b (bench/orgwide.py): the org sweep against c7n-org."""
    import orgwide  # here, not at the top: bench/orgwide.py imports this module

    started = time.time()
    c7n_org = str(Path(custodian_python).parent / "c7n-org")
    version = subprocess.run(
        [custodian_python, "-c", "import importlib.metadata as m; print(m.version('c7n-org'))"], capture_output=True, text=True
    ).stdout.strip()
    figure = orgwide.figure(bootstrap, proxy, c7n_org)
    return {
        **figure,
        **subset_run(command, started),
        "runs": orgwide.RUNS,
        "bootstrap": os.path.relpath(bootstrap, ROOT) if str(bootstrap).startswith(str(ROOT)) else str(bootstrap),
        "bootstrap_bytes": Path(bootstrap).stat().st_size,
        "bootstrap_sha256": hashlib.sha256(Path(bootstrap).read_bytes()).hexdigest(),
        "c7n_org_version": version,
        "settings": {k: v for k, v in os.environ.items() if k.startswith("BENCH_ORG_")},
    }


def main():
    global CUSTODIAN_PY
    if sys.argv[1] == "--event-only":
        return event_only(*sys.argv[2:4])
    if sys.argv[1] == "--lambda-share":
        # `make bench-share`: figures 2b, 7 and 8 alone, merged into bench/results.json and .md.
        bootstrap, proxy, CUSTODIAN_PY = sys.argv[2:5]
        started = time.time()
        share = lambda_share(bootstrap, proxy, CUSTODIAN_PY)
        tls = tls_cold(bootstrap, proxy, CUSTODIAN_PY)
        (OUT / "share.json").write_text(json.dumps({"share": share, "tls": tls}, indent=2, default=sorted))
        merge_results({"share": share, "tls": tls, "share_run": {**subset_run("make bench-share", started), "runs": RUNS}})
        print("\n".join(render_share(json.loads(json.dumps(share, default=sorted)), tls)))
        return
    if sys.argv[1] == "--org":
        # `make bench-org`: figure 3b alone, merged into bench/results.json and .md.
        bootstrap, proxy, CUSTODIAN_PY = sys.argv[2:5]
        results = merge_results({"org": org_figure(bootstrap, proxy, CUSTODIAN_PY, "make bench-org")})
        import orgwide

        print("\n".join(orgwide.render(results["org"])))
        return
    bootstrap, proxy, CUSTODIAN_PY = sys.argv[1:4]
    started = time.time()
    log("figures 1, 4, 6: one CloudTrail event")
    event = per_event(bootstrap, proxy)
    log(f"events: {event['events']}")
    world = World(proxy)
    try:
        colds = [custodian_cold(CUSTODIAN_PY, world) for _ in range(max(RUNS, 5))]
    finally:
        world.stop()
    event["custodian_cold_ms"] = median([c for c, _ in colds]) * 1000
    event["custodian_peak_rss_kib"] = median([r for _, r in colds])
    log("figures 2, 3: sweeps")
    sweep, scale = sweeps(bootstrap, proxy, CUSTODIAN_PY)
    log("figures 2b, 7: the cheapest Custodian policy, Lambda's CPU share")
    share = lambda_share(bootstrap, proxy, CUSTODIAN_PY)
    log("figure 8: the cold path over TLS")
    tls = tls_cold(bootstrap, proxy, CUSTODIAN_PY)
    log("figure 3b: the org sweep against c7n-org")
    org = org_figure(bootstrap, proxy, CUSTODIAN_PY, "make bench")
    unzipped, zipped = size(bootstrap)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "command": "make bench",
        "runs": RUNS,
        "custodian_runs": CUSTODIAN_RUNS,
        "machine": machine(),
        "event": event,
        "sweep": {str(k): {**v, "auditor": {**v["auditor"]}} for k, v in sweep.items()},
        "scale": {str(k): {kk: vv for kk, vv in v.items()} for k, v in scale.items()},
        "size": {"bootstrap_bytes": unzipped, "zip_bytes": zipped},
        "share": share,
        "tls": tls,
        "org": org,
        "minutes": round((time.time() - started) / 60, 1),
    }
    results = json.loads(json.dumps(results, default=sorted))  # int keys become strings, as they are read back
    (ROOT / "bench/results.json").write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "bench/results.md").write_text(render(results))
    print((ROOT / "bench/results.md").read_text())


def render(r):
    """bench/results.md from bench/results.json: figures 1 to 6 from the last
    `make bench`, then figure 3b and figures 2b, 7, 8 from whichever run
    (`make bench`, `make bench-org`, `make bench-share`) last merged them,
    each section naming its command, machine and date."""
    out = render_full(r) if "event" in r else ["# Benchmark results", "", "Figures 1 to 6: not run into this file yet (`make bench`).", ""]
    if "org" in r:
        import orgwide  # here, not at the top: bench/orgwide.py imports this module

        out += orgwide.render(r["org"])
    if "share" in r:
        out += render_share(r["share"], r["tls"], r.get("share_run"))
    return "\n".join(out)


def render_full(r):
    """Figures 1 to 6 of a whole `make bench` run, as Markdown lines."""
    e, m = r["event"], r["machine"]
    lo, hi = EVENT_DELAYS
    out = [
        "# Benchmark results",
        "",
        f"Produced by `{r['command']}` on {r['date']} ({r['minutes']} min). Medians of {r['runs']} runs "
        f"({r['custodian_runs']} for Custodian's sweeps).",
        "",
        f"Machine: {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; {m['rustc']}; Python {m['python']}, "
        f"Cloud Custodian {m['custodian']}, moto {m['moto']}. AWS is moto on 127.0.0.1 behind the latency proxy.",
        "",
        "## 1. Time to report one CloudTrail event (warm), and 6. calls per event",
        "",
        f"ReplicateSecretToRegions in the primary's Region; customer keys everywhere; one replica Failed (so a report is published). "
        f"Time is from the Runtime API handing out the event to the function's response, which follows SNS's answer to the Publish. "
        f"Round trips = (time at {hi} ms - time at {lo} ms) / {hi - lo} ms.",
        "",
        f"| replicas | ms at {lo} ms/call | ms at {hi} ms/call | sequential round trips | calls at the proxy | minimum (3n+{e['events'][0]['minimum_calls'] - 3 * e['events'][0]['replicas']}) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in e["events"]:
        out.append(
            f"| {row['replicas']} | {row[f'ms_at_{lo}']:.1f} | {row[f'ms_at_{hi}']:.1f} | {row['round_trips']:.2f} | {sum(row['calls'].values())} | {row['minimum_calls']} |"
        )
    total = sum(row["new_connections"] for row in e["events"])
    out += [
        "",
        f"Connections: the warm invocations above opened {total} new connections in all "
        f"({len(EVENT_DELAYS) * 3 * r['runs']} invocations); the clients and their connection pools are built once per cold start and reused.",
        "",
        "Calls for 6 replicas, by service, action and Region:",
        "",
    ]
    six = next(row for row in e["events"] if row["replicas"] == 6)
    out += [f"- `{k}`: {v}" for k, v in sorted(six["calls"].items())]
    out += [
        "",
        "## 2. Sweep against Cloud Custodian, 100 ms per call",
        "",
        "Secrets with two replicas each, a tenth broken (half a name clash, half a replica on the AWS-managed key). "
        "Both tools are whole processes: the auditor's cold start plus one sweep invocation; `custodian run` from start to exit. "
        "CPU is user+sys of that process.",
        "",
        "| secrets | tool | wall s | CPU s | calls | found (expected) |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for count, s in r["sweep"].items():
        for tool in ("auditor", "custodian"):
            t = s[tool]
            out.append(f"| {count} | {tool} | {t['wall']:.2f} | {t['cpu']:.2f} | {t['requests']} | {t['found']} of {s['broken']} ({'same' if t['found_expected'] else 'DIFFERENT'}) |")
    out += ["", "| secrets | wall ratio (Custodian / auditor) | CPU ratio |", "|---:|---:|---:|"]
    for count, s in r["sweep"].items():
        out.append(f"| {count} | {s['custodian']['wall'] / s['auditor']['wall']:.1f}x | {s['custodian']['cpu'] / s['auditor']['cpu']:.1f}x |")
    out += [
        "",
        "The bound moto and the proxy impose on the auditor's sweep: moto's throughput is measured as the same sweep with no delay "
        "(requests / wall time). `calls/16 x 100 ms` is the time if the 16 concurrent secrets each made one call at a time.",
        "",
        "| secrets | calls | moto req/s | calls / moto throughput s | calls/16 x 100 ms s | sweep wall s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, s in r["scale"].items():
        out.append(
            f"| {count} | {s['requests']} | {s['moto_requests_per_second']:.0f} | {s['requests'] / s['moto_requests_per_second']:.2f} | {s['requests'] / 16 * SWEEP_DELAY / 1000:.2f} | {s['wall']:.2f} |"
        )
    out += [
        "",
        "## 3. Scale: the auditor's sweep, 100 ms per call",
        "",
        "| secrets | wall s | ms per secret | CPU s | CPU ms per secret | peak RSS MiB | found (expected) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for count, s in r["scale"].items():
        out.append(
            f"| {count} | {s['wall']:.2f} | {s['wall'] / int(count) * 1000:.1f} | {s['cpu']:.2f} | {s['cpu'] / int(count) * 1000:.2f} "
            f"| {s['rss_kib'] / 1024:.1f} | {s['found']} ({'same' if s['found_expected'] else 'DIFFERENT'}) |"
        )
    out += [
        "",
        "## 4. Cold start and memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128)",
        "",
        "| | ready for the first event ms | peak RSS MiB |",
        "|---|---:|---:|",
        f"| auditor (`bootstrap` start to its first `next`; RSS over the process's life, one 6-replica event) | {e['cold_start_ms']:.1f} | {e['peak_rss_kib'] / 1024:.1f} |",
        f"| auditor, with this machine's certificate directory instead of Lambda's single bundle | {e['cold_start_ms_debian_certs']:.1f} | |",
        f"| Custodian (python start, import `c7n.handler`, load the policy, build its 3 clients) | {e['custodian_cold_ms']:.1f} | {e['custodian_peak_rss_kib'] / 1024:.1f} |",
        "",
        "## 5. Size",
        "",
        f"Stripped release `bootstrap` (x86_64): {r['size']['bootstrap_bytes'] / 1e6:.2f} MB; zipped: {r['size']['zip_bytes'] / 1e6:.2f} MB.",
        "",
    ]
    return out


if __name__ == "__main__":
    main()
