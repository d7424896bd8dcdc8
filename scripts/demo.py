"""The demo: the auditor end to end on this machine, no AWS account needed.

1. starts moto (tests/moto/moto_shim.py) on a free 127.0.0.1 port;
2. seeds a small account with healthy and broken multi-Region secrets
   (tests/moto/world.py) and an SNS topic with an SQS subscriber;
3. runs the auditor under `cargo lambda watch` against that moto;
4. sends it every sample event in events/ (plus one malformed event) with
   `cargo lambda invoke`;
5. prints the reports that arrived on the SNS topic;
6. stops everything it started.

Run it with `make demo` (which installs what it needs first).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT / "tests" / "moto"))

import boto3  # noqa: E402
import world  # noqa: E402

SEVERITY_ORDER = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not open port {port} within {timeout}s")


def start(cmd, log, env=None):
    return subprocess.Popen(
        cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def invoke(port, data_file=None, data=None):
    cmd = [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", "replica-auditor", "-A", "127.0.0.1", "-P", str(port)]
    cmd += ["--data-file", str(data_file)] if data_file else ["--data-ascii", data]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return out.returncode, (out.stdout + out.stderr).strip()


def drain(queue_url, endpoint):
    sqs = boto3.client(
        "sqs", region_name="us-west-2", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        batch = got.get("Messages", [])
        if not batch:
            return messages
        for m in batch:
            messages.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def main():
    logdir = Path(tempfile.mkdtemp(prefix="replica-auditor-demo-"))
    moto = watch = None
    try:
        moto_port, watch_port = free_port(), free_port()
        endpoint = f"http://127.0.0.1:{moto_port}"
        print(f"==> starting moto on {endpoint}")
        moto = start([str(VENV_BIN / "python"), "tests/moto/moto_shim.py", "-p", str(moto_port)], open(logdir / "moto.log", "w"))
        wait_for_port(moto_port, "moto", moto)

        print("==> seeding a small account: healthy and broken multi-Region secrets")
        w = world.seed(endpoint)
        for name, arn in w["secrets"].items():
            print(f"    {name:34} {arn}")

        env_vars = {
            "AWS_REGION": "us-west-2",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "FINDINGS_TOPIC_ARN": w["topic_arn"],
            "ALLOWED_REGIONS": "us-west-2,us-east-1",
            "MIN_SEVERITY": "LOW",
            "RUST_LOG": "info",
        }
        env_file = logdir / "function.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env_vars.items()))
        print("==> building the function (dev profile)")
        subprocess.run(["cargo", "build", "--quiet", "--bin", "replica-auditor"], cwd=ROOT, check=True)
        print(f"==> starting the auditor under cargo lambda watch on 127.0.0.1:{watch_port}")
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
        watch = start(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--quiet",
             "-A", "127.0.0.1", "-P", str(watch_port), "--env-file", str(env_file)],
            open(logdir / "function.log", "w"),
            env=env,
        )
        wait_for_port(watch_port, "cargo lambda watch", watch)

        print("==> sending the sample events")
        failures = 0
        for path in sorted((ROOT / "events").glob("*.json")):
            code, out = invoke(watch_port, data_file=path)
            if code == 0:
                result = json.loads(out)
                summary = result.get("summary", {})
                if result.get("status") == "ignored":
                    what = f"ignored ({result['event_name']}: not an event the auditor acts on)"
                elif summary.get("count"):
                    what = f"{summary['count']} finding(s), highest {summary['highest_severity']}: published"
                else:
                    what = "healthy: no findings, nothing published"
            else:
                failures += 1
                what = f"ERROR: {out}"
            print(f"    {path.name:46} {what}")
        code, out = invoke(watch_port, data='{"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail"}')
        reason = next((line.strip() for line in out.splitlines() if "malformed event" in line), out)
        print(f"    {'(a malformed event)':46} {'rejected: ' + reason if code else 'UNEXPECTEDLY ACCEPTED'}")
        code2, _ = invoke(watch_port, data_file=ROOT / "events" / "create-secret.json")
        print(f"    {'(the next event)':46} {'served normally' if code2 == 0 else 'FAILED'}")
        failures += (code == 0) + (code2 != 0)

        messages = drain(w["queue_url"], endpoint)
        print(f"\n==> {len(messages)} report(s) arrived on {w['topic_arn']}\n")
        for m in messages:
            report = json.loads(m["Message"])
            print(m["Subject"])
            for f in report["findings"]:
                print(f"  - {f['severity']:8} {f['code']:32} {f['region'] or '-':10} {f['message']}")
            print()
        if messages:
            print("==> one report in full (the SNS message body):")
            print(messages[0]["Message"])
        print(f"\nfunction logs: {logdir / 'function.log'}")
        if failures:
            raise SystemExit(f"demo: {failures} invocation(s) did not behave as expected")
    finally:
        stop(watch)
        stop(moto)


if __name__ == "__main__":
    main()
