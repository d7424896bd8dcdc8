"""Long runs through `cargo lambda watch`: N invocations back to back, then
M at once, mixed good and bad events, against moto.

Checks: zero lost reports (every invocation that returned findings has its
report on the SNS topic's SQS subscription, and nothing else arrived), zero
unexpected errors (only the malformed events fail), and resident memory of
the function process at start and end.

Usage: scripts/soak.py [--sequential 2000] [--concurrent 200] [--release]
(`make soak` runs the full size; `make test` a smoke of 200 and 50).

The concurrent phase starts all its invocations at once from as many
threads, but keeps at most --max-in-flight (default 100) waiting on the
emulator: cargo lambda watch 1.9.2 queues invocations in a bounded channel
of 100 (`mpsc::channel(100)` in its scheduler) and stops dispatching when
more are queued. That is the emulator's limit, not the function's.
"""

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from local_stack import ROOT, LocalStack, rss_kib

MALFORMED = [
    b"not json at all",
    json.dumps({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail"}).encode(),
    json.dumps({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
                "detail": {"eventName": "CreateSecret", "requestParameters": {}}}).encode(),
    b"[" * 100 + b"]" * 100,
]


def workload(n):
    """n events: the sample events in turn, every fifth one malformed."""
    good = [p.read_bytes() for p in sorted((ROOT / "events").glob("*.json"))]
    out = []
    for i in range(n):
        if i % 5 == 4:
            out.append(("bad", MALFORMED[(i // 5) % len(MALFORMED)]))
        else:
            out.append(("good", good[i % len(good)]))
    return out


def run(stack, items, concurrency, max_in_flight, pid=None):
    results = {"ok": 0, "expected_errors": 0, "unexpected": [], "reports_expected": 0, "rss": []}
    gate = threading.BoundedSemaphore(max_in_flight)
    done = [0]
    # Four RSS samples per phase (every 500 in `make soak`'s 2,000).
    sample_every = max(len(items) // 4, 1)

    def one(item):
        kind, payload = item
        with gate:
            out = kind, stack.invoke_http(payload)
        done[0] += 1
        if pid and done[0] % sample_every == 0:
            results["rss"].append((done[0], rss_kib(pid)))
        return out

    started = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for kind, (ok, body) in pool.map(one, items):
            if kind == "bad" and not ok and "malformed event" in body.get("errorMessage", ""):
                results["expected_errors"] += 1
            elif kind == "good" and ok:
                results["ok"] += 1
                if "sweep" in body:
                    # A sweep publishes its summary and one report per secret with findings.
                    results["reports_expected"] += 1 + body["sweep"]["reports_published"]
                elif body.get("summary", {}).get("count") or body.get("actions"):
                    results["reports_expected"] += 1
            else:
                results["unexpected"].append((kind, body))
    results["seconds"] = time.time() - started
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequential", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--max-in-flight", type=int, default=100)
    ap.add_argument("--instances", type=int, default=1,
                    help="function instances cargo lambda watch may run (its --concurrency)")
    args = ap.parse_args()
    stack = LocalStack(function_env={"ALLOWED_REGIONS": "us-west-2,us-east-1", "RUST_LOG": "warn"}, release=args.release,
                       concurrency=args.instances)
    failed = False
    try:
        stack.start()
        # Warm up: the first invocation starts the function process.
        stack.invoke_http((ROOT / "events" / "create-secret.json").read_bytes())
        pids = stack.function_pids()
        if not pids:
            raise SystemExit("soak: no function process under this stack's cargo lambda watch after the warm-up")
        pid = pids[0]
        rss_start = rss_kib(pid)
        print(f"==> function pid {pid}, RSS after warm-up {rss_start} KiB")
        for label, items, conc in (
            ("back to back", workload(args.sequential), 1),
            ("at once", workload(args.concurrent), args.concurrent),
        ):
            if not items:
                continue
            r = run(stack, items, conc, args.max_in_flight, pid)
            published = stack.drain()
            lost = r["reports_expected"] - len(published)
            rate = len(items) / r["seconds"]
            print(f"==> {len(items)} invocations {label}: {r['seconds']:.1f}s ({rate:.0f}/s); "
                  f"ok {r['ok']}, malformed rejected {r['expected_errors']}, unexpected {len(r['unexpected'])}; "
                  f"reports expected {r['reports_expected']}, arrived {len(published)}, lost {lost}")
            if r["rss"]:
                print("    RSS (KiB) after n invocations: " + ", ".join(f"{n}: {kib}" for n, kib in r["rss"]))
            for kind, body in r["unexpected"][:5]:
                print(f"    unexpected ({kind}): {json.dumps(body)[:300]}")
            failed |= bool(r["unexpected"]) or lost != 0
        pids = stack.function_pids()
        if pid not in pids:
            print("!! the first function process was restarted during the run")
            failed = True
        print(f"==> function processes at the end: {len(pids)}")
        rss_end = rss_kib(pid)
        if rss_end is None or rss_start is None:
            print(f"!! function process {pid} exited: RSS start {rss_start} KiB, end {rss_end}")
            failed = True
        else:
            print(f"==> RSS start {rss_start} KiB, end {rss_end} KiB ({(rss_end - rss_start) / 1024:+.1f} MiB)")
    finally:
        stack.stop()
    if failed:
        raise SystemExit("soak: FAILED")
    print("soak: passed")


if __name__ == "__main__":
    main()
