"""Figure 3b (issue 17, item 3): the org sweep against c7n-org, side by side.

Run by `make bench-org` (alone) and by `make bench` (with every figure),
through bench/bench.py. One world on 127.0.0.1, everything it starts stopped:

- moto (tests/moto/moto_shim.py) seeded with an organisation: the management
  account and BENCH_ORG_ACCOUNTS - 1 members (20 in all by default), entered
  through the member role with AssumeRole, as tests/moto/org_world.py does;
  in each account and each swept Region (us-west-2, us-east-1)
  BENCH_ORG_SECRETS primaries (100) on a customer key, each replicated to
  eu-west-1 (not swept) on a customer key there; every tenth replica Failed
  on a name clash (a secret of the same name already in eu-west-1), as
  bench.py's seed_sweep_secrets makes them;
- bench/latency-proxy in front of moto, BENCH_ORG_DELAY_MS (100) per call,
  counting every call both tools make;
- the auditor: the real release Lambda binary as N separate processes (N =
  BENCH_ORG_WORKERS, each behind its own Lambda Runtime API emulator, as
  Lambda runs one execution environment per concurrent batch). Worker 0 is
  handed the scheduled event (the planner: ListAccounts, the sweep's item,
  one SQS message per (account, Region) cell); then a small event source
  mapping here (one consumer per worker, BatchSize 1, ReportBatchItemFailures)
  receives the cells from moto's SQS and invokes its worker until the queue
  is empty, and the org summary must have been published. Like Lambda's own
  poller, the mapping talks to SQS directly: its calls are not the
  function's (not counted, no delay), and its CPU is not counted;
- c7n-org 0.6.52 (`c7n-org run`, from .venv-bench) with
  bench/custodian-cheapest.yml over an accounts file naming the member role
  in each account (c7n-org assumes it), both Regions, C7N_ORG_PARALLEL = N
  workers (its process pool; 0.6.52 has no -w flag), --cache-period 0.

Measured for both: wall time (auditor: the planner's invocation plus the
consumption of every cell, each also given; c7n-org: from its start to its
exit), CPU (user+sys: the auditor's N processes over their whole lives,
cold starts included; c7n-org's process and its pool, as wait4 reports a
process with the children it reaped), peak RSS per worker (VmHWM of each
auditor process; c7n-org's pool processes, read from /proc while it runs,
and its parent process), the AWS calls at the proxy and the Failed secrets
each found: (account, Region, name), which must be the seeded set.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import bench
from bench import OUT, ROOT, Auditor, World, log, rss_kib

import org_world  # noqa: E402  (tests/moto/org_world.py; bench.py put tests/moto on sys.path)
import world as test_world  # noqa: E402

SWEPT = ["us-west-2", "us-east-1"]
REPLICA = "eu-west-1"
ACCOUNTS = int(os.environ.get("BENCH_ORG_ACCOUNTS", "20"))
SECRETS = int(os.environ.get("BENCH_ORG_SECRETS", "100"))
DELAY = int(os.environ.get("BENCH_ORG_DELAY_MS", "100"))
WORKERS = [int(w) for w in os.environ.get("BENCH_ORG_WORKERS", "4").split(",")]
RUNS = int(os.environ.get("BENCH_ORG_RUNS", "1"))
# Worker counts at which the auditor's org sweep also runs with no delay at
# all (the floor moto's throughput and the GetResourcePolicy pace set); empty: none.
FLOOR = [int(w) for w in os.environ.get("BENCH_ORG_FLOOR", "4").split(",") if w]
# The sweep's GetResourcePolicy pace (src/engine/sweep/cache.rs:
# RESOURCE_POLICY_READS_PER_SECOND, RESOURCE_POLICY_BURST), per account and
# Region, for the floor it sets on a cell.
POLICY_PACE, POLICY_BURST = 25, 5
# The function's timeout in template.yaml; the mapping's visibility timeout
# is longer than any invocation, as AWS advises.
FUNCTION_TIMEOUT = 300
VISIBILITY_TIMEOUT = 900
# As the queue's redrive policy (tests/moto/org_world.py: maxReceiveCount 2).
MAX_RECEIVE_COUNT = 2
POLICY_NAME = "secret-replication-failed"


# --- the machine: what else ran -------------------------------------------------------------


def proc_cpu(pid):
    """User+sys seconds of a live process (its reaped children included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Others:
    """CPU the rest of the machine used during a run: all busy time in
    /proc/stat, less the tool's own (measured by the run), moto's, the
    proxy's and this harness's. On this 2-core machine shared with other
    work, a run beside a compiler is not a run on a quiet machine; the figure
    says which it was."""

    def __init__(self, world):
        self.pids = [world.moto.pid, world.proxy.pid]
        self.start = self.sample()

    def sample(self):
        busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in busy[:8])
        own = sum(proc_cpu(p) for p in self.pids)
        mine = os.times()
        return ((user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), own, mine.user + mine.system)

    def stop(self, tool_cpu):
        end = self.sample()
        busy, world, harness = (b - a for a, b in zip(self.start, end))
        return {"other_cpu": max(0.0, busy - world - harness - tool_cpu), "moto_proxy_cpu": world, "harness_cpu": harness}


# --- the world ----------------------------------------------------------------------------


def seed(world):
    """The organisation, its secrets, and the auditor's resources in the
    management account. Returns what the runs need, with the expected set of
    Failed secrets as (account, Region, name)."""
    own = org_world.session(world.moto_url)
    orgs = own("organizations", "us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    accounts = [org_world.MANAGEMENT]
    for i in range(ACCOUNTS - 1):
        made = orgs.create_account(AccountName=f"member-{i}", Email=f"member-{i}@example.com")
        accounts.append(made["CreateAccountStatus"]["AccountId"])
    sts = own("sts", org_world.WEST)
    expected = set()
    for account in accounts:
        if account == org_world.MANAGEMENT:
            client = own
        else:
            creds = sts.assume_role(RoleArn=role_arn(account), RoleSessionName="seed")["Credentials"]
            client = org_world.session(world.moto_url, creds)
        # moto's default key policy lets the account's own root in: no
        # key-policy finding, so a secret with findings is a Failed one.
        keys = {r: client("kms", r).create_key(Description="fig3")["KeyMetadata"]["Arn"] for r in [*SWEPT, REPLICA]}
        sm = {r: client("secretsmanager", r) for r in [*SWEPT, REPLICA]}
        # One request at a time (moto's backends are not thread-safe; see
        # bench.seed_sweep_secrets).
        for r, region in enumerate(SWEPT):
            for i in range(SECRETS):
                # No Region name in a secret's name: moto names a replica by
                # replacing the Region in the primary's ARN, name included.
                name = f"fig3/r{r}-{i:03d}"
                if i % 10 == 3:
                    sm[REPLICA].create_secret(Name=name, SecretString="someone else's")
                    expected.add((account, region, name))
                sm[region].create_secret(
                    Name=name,
                    SecretString="never read",
                    KmsKeyId=keys[region],
                    AddReplicaRegions=[{"Region": REPLICA, "KmsKeyId": keys[REPLICA]}],
                )
    topic = world.topic_with_inbox()
    queue, dlq = org_world.sweep_queues(own)
    sqs = own("sqs", org_world.WEST)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {
        "accounts": accounts,
        "expected": expected,
        "topic": topic,
        "state_table": test_world.state_table(world.moto_url),
        "queue": queue,
        "queue_arn": queue_arn,
        "dlq": dlq,
    }


def role_arn(account):
    return f"arn:aws:iam::{account}:role/{org_world.MEMBER_ROLE}"


# --- the auditor: N Lambda environments fed by an event source mapping ---------------------


class EventSourceMapping:
    """Lambda's SQS poller, as tests/support/esm.rs models it: one consumer
    per execution environment, BatchSize 1, ReportBatchItemFailures (a failed
    record stays and comes back once its visibility ends: here after 1 s, as
    the test-side mapping shortens it; the others are deleted). Talks to
    moto directly: Lambda's polling is not the function's work."""

    def __init__(self, moto_url, queue, queue_arn):
        self.moto_url, self.queue, self.queue_arn = moto_url, queue, queue_arn
        self.deliveries, self.failed = 0, 0
        self.lock = threading.Lock()

    def sqs(self):
        return test_world.client("sqs", org_world.WEST, self.moto_url)

    def empty(self, sqs):
        attrs = sqs.get_queue_attributes(
            QueueUrl=self.queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) == 0 and int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0

    def consume(self, auditor, errors):
        sqs = self.sqs()
        try:
            while True:
                got = sqs.receive_message(
                    QueueUrl=self.queue, MaxNumberOfMessages=1, VisibilityTimeout=VISIBILITY_TIMEOUT, AttributeNames=["All"]
                ).get("Messages", [])
                if not got:
                    if self.empty(sqs):
                        return
                    time.sleep(0.05)
                    continue
                records = [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": {"ApproximateReceiveCount": m["Attributes"].get("ApproximateReceiveCount", "1"), "SentTimestamp": "0"},
                        "messageAttributes": {},
                        "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": self.queue_arn,
                        "awsRegion": org_world.WEST,
                    }
                    for m in got
                ]
                try:
                    _, answer = auditor.api.invoke({"Records": records}, timeout=FUNCTION_TIMEOUT)
                    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
                except RuntimeError as e:  # the invocation failed: the whole batch stays
                    log(f"invocation failed: {e}")
                    failed = {m["MessageId"] for m in got}
                for m in got:
                    if m["MessageId"] in failed:
                        sqs.change_message_visibility(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=1)
                    else:
                        sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
                with self.lock:
                    self.deliveries += len(got)
                    self.failed += len(failed)
        except Exception as e:  # noqa: BLE001  (reported by the caller)
            errors.append(e)


def scheduled_event():
    return bench.sweep_event()


def auditor_run(bootstrap, world, org, workers, delay=DELAY, refresh=bench.DEFAULT_POLICY_REFRESH):
    """One org sweep by `workers` Lambda environments, every policy read
    once in `refresh` sweeps (SWEEP_POLICY_REFRESH)."""
    world.set_delay(delay)
    world.drain()
    world.reset()
    env = {
        "STATE_TABLE": org["state_table"],
        "SWEEP_QUEUE_URL": org["queue"],
        "SWEEP_REGIONS": ",".join(SWEPT),
        "SWEEP_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        "SWEEP_POLICY_REFRESH": str(refresh),
    }
    # The environments start before the clock (a cold start is about 4 ms,
    # figure 4); their CPU is counted over their whole lives.
    logfile = OUT / "auditor.log"
    offset = logfile.stat().st_size if logfile.exists() else 0
    auditors = [Auditor(bootstrap, world, **env) for _ in range(workers)]
    stopped = False
    others = Others(world)
    try:
        t0 = time.perf_counter()
        _, planned = auditors[0].api.invoke(scheduled_event(), timeout=FUNCTION_TIMEOUT)
        plan_wall = time.perf_counter() - t0
        plan_calls = world.stats()["calls"]
        if planned.get("status") != "planned":
            raise RuntimeError(f"the planner answered {planned}")
        esm = EventSourceMapping(world.moto_url, org["queue"], org["queue_arn"])
        errors = []
        threads = [threading.Thread(target=esm.consume, args=(a, errors)) for a in auditors]
        t1 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The last response, not the mapping's last poll of an empty queue.
        consume_wall = max(a.api.last_done for a in auditors) - t1
        if errors:
            raise RuntimeError(f"the event source mapping failed: {errors[0]!r}")
        stats = world.stats()
        peaks = [rss_kib(a.proc.pid, "VmHWM") for a in auditors]
        cpus = [a.stop()[0] for a in auditors]
        stopped = True
        machine = others.stop(sum(cpus))
    finally:
        if not stopped:
            for a in auditors:
                a.stop()
    # Each cell's own duration, from its EMF line (AuditDuration, ms).
    with open(logfile, "rb") as log_lines:
        log_lines.seek(offset)
        emf = [json.loads(line) for line in log_lines if line.startswith(b"{") and b'"CellsDone"' in line]
    cell_s = sorted(round(e["AuditDuration"] / 1000, 2) for e in emf if e.get("CellsDone"))
    reports = world.drain()
    summaries = [r for r in reports if (r.get("sweep") or {}).get("scope") == "organization"]
    found, codes = set(), {}
    for r in reports:
        if r.get("sweep") is None and r["findings"]:
            s = r["secret"]
            found.add((s["account"], s["primary_region"], s["name"]))
            for f in r["findings"]:
                codes[f["code"]] = codes.get(f["code"], 0) + 1
    summary = summaries[0]["sweep"] if summaries else None
    return {
        "wall": plan_wall + consume_wall,
        "plan_wall": plan_wall,
        "consume_wall": consume_wall,
        "cpu": sum(cpus),
        "cpu_per_worker": cpus,
        "peak_rss_kib_per_worker": peaks,
        "peak_rss_kib": max(peaks),
        "requests": stats["requests"],
        "calls": stats["calls"],
        "plan_calls": plan_calls,
        "cell_s": cell_s,
        **machine,
        "deliveries": esm.deliveries,
        "failed_records": esm.failed,
        "summaries": len(summaries),
        "cells": summary and summary["cells"],
        "secrets_seen": summary and summary["secrets_seen"],
        "codes": codes,
        "found": found,
    }


# --- c7n-org ---------------------------------------------------------------------------------


class TreeWatch:
    """Polls /proc for a process's descendants while it runs: each one's
    peak RSS (VmHWM, which only grows, so the last reading is the closest)."""

    def __init__(self, pid, every=0.05):
        self.pid, self.every = pid, every
        self.peaks = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def tree(self):
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
        return pids

    def watch(self):
        while not self.done.is_set():
            for pid in self.tree():
                try:
                    hwm = rss_kib(pid, "VmHWM")
                except OSError:
                    continue
                if hwm:
                    self.peaks[pid] = max(hwm, self.peaks.get(pid, 0))
            self.done.wait(self.every)

    def stop(self):
        self.done.set()
        self.thread.join()


def c7n_org_run(c7n_org, world, org, workers, workdir):
    """One `c7n-org run` of the cheapest policy over every account and both
    Regions with `workers` pool processes."""
    world.set_delay(DELAY)
    world.reset()
    run = Path(workdir) / f"run-{uuid.uuid4().hex[:8]}"
    (run / "cache").mkdir(parents=True)
    accounts = {"accounts": [{"account_id": a, "name": a, "role": role_arn(a)} for a in org["accounts"]]}
    # YAML is a superset of JSON.
    (run / "accounts.yml").write_text(json.dumps(accounts, indent=1))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(run),
        **bench.CREDS,
        "AWS_DEFAULT_REGION": org_world.WEST,
        "AWS_ENDPOINT_URL": world.proxy_url,
        "C7N_ORG_PARALLEL": str(workers),
    }
    cmd = [
        c7n_org, "run", "-c", str(run / "accounts.yml"), "-s", str(run / "out"), "-u", str(bench.CUSTODIAN_CHEAPEST),
        *[a for r in SWEPT for a in ("-r", r)], "--cache-period", "0", "--cache-path", str(run / "cache"),
    ]
    logfile = open(OUT / "c7n-org.log", "ab")
    others = Others(world)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=logfile, stderr=subprocess.STDOUT)
    watch = TreeWatch(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    watch.stop()
    logfile.close()
    machine = others.stop(usage.ru_utime + usage.ru_stime)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"c7n-org failed ({proc.returncode}); see {OUT / 'c7n-org.log'}")
    stats = world.stats()
    found = set()
    for a in org["accounts"]:
        for r in SWEPT:
            resources = run / "out" / a / r / POLICY_NAME / "resources.json"
            found |= {(a, r, s["Name"]) for s in json.loads(resources.read_text())}
    pool = {pid: kib for pid, kib in watch.peaks.items() if pid != proc.pid}
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_kib_per_worker": sorted(pool.values()),
        "peak_rss_kib": max(pool.values()) if pool else None,
        "parent_peak_rss_kib": watch.peaks.get(proc.pid),
        "processes": len(pool),
        **machine,
        "requests": stats["requests"],
        "calls": stats["calls"],
        "found": found,
    }


# --- the figure ----------------------------------------------------------------------------------


def figure(bootstrap, proxy, c7n_org):
    """Both tools at each worker count in BENCH_ORG_WORKERS, on one world."""
    world = World(proxy)
    workdir = tempfile.mkdtemp(prefix="c7n-org-bench-")
    try:
        t = time.perf_counter()
        org = seed(world)
        seeding = time.perf_counter() - t
        expected = org["expected"]
        log(f"figure 3b: seeded {len(org['accounts'])} accounts x {len(SWEPT)} Regions x {SECRETS} secrets "
            f"({len(expected)} Failed) in {seeding:.0f}s")
        out = {
            "accounts": len(org["accounts"]),
            "regions": SWEPT,
            "secrets_per_cell": SECRETS,
            "delay_ms": DELAY,
            "expected": len(expected),
            "seeding_s": seeding,
            "by_workers": {},
        }
        out["floor"] = {}
        out["default_policy_refresh"] = bench.DEFAULT_POLICY_REFRESH
        # The policy ledger counts a secret changed less than 5 minutes
        # before a sweep as changed (bench.settle).
        bench.settle(time.time())
        for workers in FLOOR:
            # The first sweep, with no ledger yet: every policy read. With no
            # delay at all it is bound by moto's own throughput and the
            # sweep's GetResourcePolicy pace (25 a second per account and
            # Region), not by round trips. It leaves the ledgers.
            a = auditor_run(bootstrap, world, org, workers, delay=0)
            log(f"auditor at 0 ms, {workers} workers (first sweep): {a['wall']:.1f}s wall, {a['requests']} calls, cells {a['cell_s']}")
            out["floor"][str(workers)] = summarise([a], expected)
        for workers in WORKERS:
            mine, every, theirs = [], [], []
            for _ in range(RUNS):
                a = auditor_run(bootstrap, world, org, workers)
                log(f"auditor, {workers} workers: {a['wall']:.1f}s wall (plan {a['plan_wall']:.2f}s), {a['cpu']:.2f}s CPU, "
                    f"peak RSS {a['peak_rss_kib'] / 1024:.1f} MiB, {a['requests']} calls, found {len(a['found'])}; "
                    f"other processes {a['other_cpu']:.1f}s CPU, moto+proxy {a['moto_proxy_cpu']:.1f}s")
                mine.append(a)
                e = auditor_run(bootstrap, world, org, workers, refresh=1)
                log(f"auditor reading every policy, {workers} workers: {e['wall']:.1f}s wall, {e['cpu']:.2f}s CPU, {e['requests']} calls")
                every.append(e)
                c = c7n_org_run(c7n_org, world, org, workers, workdir)
                log(f"c7n-org, {workers} workers: {c['wall']:.1f}s wall, {c['cpu']:.2f}s CPU, "
                    f"peak RSS {(c['peak_rss_kib'] or 0) / 1024:.1f} MiB, {c['requests']} calls, found {len(c['found'])}; "
                    f"other processes {c['other_cpu']:.1f}s CPU, moto+proxy {c['moto_proxy_cpu']:.1f}s")
                theirs.append(c)
            out["by_workers"][str(workers)] = {
                "auditor": summarise(mine, expected),
                "auditor_every_policy": summarise(every, expected),
                "c7n_org": summarise(theirs, expected),
            }
        return out
    finally:
        world.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def summarise(runs, expected):
    """Medians over the runs; the last run's detail; whether every run found
    exactly the seeded set."""
    last = runs[-1]
    med = lambda k: bench.median([r[k] for r in runs])  # noqa: E731
    keep = {k: v for k, v in last.items() if k not in ("found",)}
    return {
        **keep,
        "wall": med("wall"),
        "cpu": med("cpu"),
        "peak_rss_kib": max(r["peak_rss_kib"] or 0 for r in runs),
        "runs": len(runs),
        "walls": [r["wall"] for r in runs],
        "cpus": [r["cpu"] for r in runs],
        "found": len(last["found"]),
        "found_expected": all(r["found"] == expected for r in runs),
        "missed": sorted("/".join(x) for x in expected - last["found"])[:10],
        "extra": sorted("/".join(x) for x in last["found"] - expected)[:10],
    }


def by_count(rows):
    """A figure's rows by worker count, fewest first (they run in the order given)."""
    return sorted(rows.items(), key=lambda kv: int(kv[0]))


def by_action(calls):
    out = {}
    for k, v in calls.items():
        action = k.split("@", 1)[0]
        out[action] = out.get(action, 0) + v
    return out


def render(f):
    """Figure 3b as Markdown lines."""
    cells, m = f["accounts"] * len(f["regions"]), f["machine"]
    out = [
        "## 3b. Org-wide: the org sweep against c7n-org (issue 17, item 3)",
        "",
        f"Produced by `{f['command']}` on {f['date']} ({f['minutes']} min); {f['runs']} run(s) per tool and worker count "
        f"(medians). Bootstrap: `{f['bootstrap']}` ({f['bootstrap_bytes'] / 1e6:.2f} MB); c7n-org {f['c7n_org_version']}. "
        f"Machine: {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; Python {m['python']}, Cloud Custodian "
        f"{m['custodian']}, moto {m['moto']}.",
        "",
        f"{f['accounts']} accounts (the management account and {f['accounts'] - 1} members, entered through the member role "
        f"with AssumeRole) x {len(f['regions'])} Regions ({', '.join(f['regions'])}) x {f['secrets_per_cell']} primaries = "
        f"{cells * f['secrets_per_cell']:,} secrets in {cells} cells, each replicated to eu-west-1 (not swept) on customer keys; "
        f"a tenth ({f['expected']}) Failed on a name clash. Every AWS call held {f['delay_ms']} ms by the latency proxy. "
        "Seeding is not timed. Equal parallelism: N auditor Lambda environments (the real release binary, one process "
        "each, behind its own Runtime API) fed by an SQS event source mapping with N consumers (BatchSize 1, "
        "ReportBatchItemFailures), against `c7n-org run` of `bench/custodian-cheapest.yml` with C7N_ORG_PARALLEL = N "
        "(its process pool) and `--cache-period 0`.",
        "",
        "Auditor wall = the planner's invocation (the scheduled event: ListAccounts, the sweep's item, one SQS message per "
        "cell) + every cell consumed, to the last response (the org summary published); the environments were started "
        "before the clock (a cold start is about 4 ms). c7n-org wall = its process, start to exit. CPU = user+sys of every "
        "process of the tool (the auditor's N environments over their whole lives; c7n-org and its pool, reaped). Peak RSS "
        "per worker = the largest VmHWM among the auditor's environments / c7n-org's pool processes (its parent process "
        "separately). Calls are counted at the proxy (the mapping's SQS polling, like Lambda's, is not the function's and "
        "goes to moto directly).",
        "",
        "| workers | tool | wall s | CPU s | peak RSS per worker MiB | AWS calls | found (expected) |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    default = f.get("default_policy_refresh")

    def auditors(row):
        named = [(f"auditor (SWEEP_POLICY_REFRESH {default}, the default)" if default else "auditor", row["auditor"])]
        if "auditor_every_policy" in row:
            named.append(("auditor, every policy (SWEEP_POLICY_REFRESH 1)", row["auditor_every_policy"]))
        return named

    for n, row in by_count(f["by_workers"]):
        c = row["c7n_org"]
        for name, a in auditors(row):
            out.append(
                f"| {n} | {name} | {a['wall']:.1f} (plan {a['plan_wall']:.2f} + cells {a['consume_wall']:.1f}) | {a['cpu']:.2f} | "
                f"{a['peak_rss_kib'] / 1024:.1f} | {a['requests']:,} | {a['found']} of {f['expected']} ({'same' if a['found_expected'] else 'DIFFERENT'}) |"
            )
        out.append(
            f"| {n} | c7n-org | {c['wall']:.1f} | {c['cpu']:.2f} | {c['peak_rss_kib'] / 1024:.1f} (parent {c['parent_peak_rss_kib'] / 1024:.1f}; "
            f"{c['processes']} pool {'process' if c['processes'] == 1 else 'processes'}) | {c['requests']:,} | {c['found']} of {f['expected']} ({'same' if c['found_expected'] else 'DIFFERENT'}) |"
        )
    if all("other_cpu" in row[t] for _, row in by_count(f["by_workers"]) for t in ("auditor", "c7n_org")):
        others = "; ".join(
            f"{n} {'worker' if n == '1' else 'workers'}: auditor {row['auditor']['other_cpu']:.1f} s in {row['auditor']['wall']:.0f} s, "
            f"c7n-org {row['c7n_org']['other_cpu']:.1f} s in {row['c7n_org']['wall']:.0f} s"
            for n, row in by_count(f["by_workers"])
        )
        out += [
            "",
            "What else ran: CPU used by other processes on the machine during each run (all busy time in /proc/stat less the "
            f"tool's, moto's, the proxy's and the harness's; 2 cores give 2 s a second): {others}. moto and the proxy used "
            + "; ".join(f"{n}: {row['auditor']['moto_proxy_cpu']:.1f} s / {row['c7n_org']['moto_proxy_cpu']:.1f} s" for n, row in by_count(f["by_workers"]))
            + " (auditor / c7n-org).",
        ]
    out += [
        "",
        "| workers | auditor | wall ratio (c7n-org / auditor) | CPU ratio | auditor peak RSS per worker | goal: 5x wall, 20x CPU, under 32 MB, same secrets |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for n, row in by_count(f["by_workers"]):
        c = row["c7n_org"]
        for name, a in auditors(row):
            w, u = c["wall"] / a["wall"], c["cpu"] / a["cpu"]
            rss = a["peak_rss_kib"] / 1024
            met = [("5x wall", w >= 5), ("20x CPU", u >= 20), ("RSS", rss * 1.048576 < 32), ("same secrets", a["found_expected"] and c["found_expected"])]
            verdict = "met" if all(ok for _, ok in met) else "NOT met (" + ", ".join(name for name, ok in met if not ok) + ")"
            out.append(f"| {n} | {name} | {w:.1f}x | {u:.1f}x | {rss:.1f} MiB ({rss * 1.048576:.1f} MB) | {verdict} |")
    out += ["", "Calls by action, each tool (the last run at each worker count):", "", "| workers | tool | calls by action |", "|---:|---|---|"]
    for n, row in by_count(f["by_workers"]):
        for tool in ("auditor", "c7n_org"):
            acts = by_action(row[tool]["calls"])
            out.append(f"| {n} | {tool} | {', '.join(f'{k} {v:,}' for k, v in sorted(acts.items()))} |")
    first = by_count(f["by_workers"])[0][1]["auditor"]
    out += [
        "",
        f"The planner's calls: {', '.join(f'{k} {v}' for k, v in sorted(first['plan_calls'].items()))}. "
        f"Deliveries per auditor run: {first['deliveries']} ({first['failed_records']} failed records); org summaries "
        f"published: {first['summaries']}; its cells: {json.dumps(first['cells'])}.",
        "",
    ]
    pace = (f["secrets_per_cell"] - POLICY_BURST) / POLICY_PACE
    out += [
        "Where the auditor's time goes. A cell that reads every audited secret's resource policy (the first sweep, or "
        f"SWEEP_POLICY_REFRESH 1) does so at the sweep's pace of {POLICY_PACE} GetResourcePolicy a second per account and "
        f"Region (after a burst of {POLICY_BURST}), within that call's 50/s quota: {pace:.1f} s a cell of "
        f"{f['secrets_per_cell']} secrets whatever the latency, so N workers need at least {cells} x {pace:.1f} / N s (the "
        "pace floor below). With the policy ledger a cell reads only its refresh share. Each cell's own duration (its EMF "
        "AuditDuration), and the first sweep (no ledger yet: every policy read) with no delay at all, which leaves that "
        "pace and moto's own throughput:",
        "",
        "| workers | delay ms | wall s | pace floor s | cell s: min / median / max | calls | calls/s | CPU s |",
        "|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    rows = [(n, f["delay_ms"], row["auditor"]) for n, row in by_count(f["by_workers"])]
    rows += [(n, 0, a) for n, a in f.get("floor", {}).items()]
    for n, delay, a in sorted(rows, key=lambda x: (int(x[0]), -x[1])):
        c = a["cell_s"]
        cells_line = f"{c[0]:.1f} / {c[len(c) // 2]:.1f} / {c[-1]:.1f}" if c else ""
        out.append(
            f"| {n} | {delay} | {a['wall']:.1f} | {cells * pace / int(n):.1f} | {cells_line} | {a['requests']:,} | "
            f"{a['requests'] / a['wall']:.0f} | {a['cpu']:.2f} |"
        )
    out.append("")
    return out
