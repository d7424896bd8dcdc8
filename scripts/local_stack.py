"""The local stack the demo and the soak run share: moto (through the test
shim) seeded with the demo world, and the auditor under `cargo lambda watch`,
all on 127.0.0.1, all stopped by `LocalStack.stop()`."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
# The Lambda binary (cargo-lambda and SAM package it as `bootstrap`); also
# the function name cargo lambda watch serves it under.
FUNCTION = "replica-auditor-lambda"
sys.path.insert(0, str(ROOT / "tests" / "moto"))

import boto3  # noqa: E402
import world  # noqa: E402


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


class LocalStack:
    def __init__(self, function_env=None, release=False, concurrency=1):
        self.logdir = Path(tempfile.mkdtemp(prefix="replica-auditor-"))
        self.moto = self.watch = None
        self.function_env = function_env or {}
        self.release = release
        self.concurrency = concurrency

    def start(self, say=print):
        moto_port, self.watch_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{moto_port}"
        say(f"==> starting moto on {self.endpoint}")
        self.moto = start(
            [str(VENV_BIN / "python"), "tests/moto/moto_shim.py", "-p", str(moto_port)], open(self.logdir / "moto.log", "w")
        )
        wait_for_port(moto_port, "moto", self.moto)
        say("==> seeding a small account: healthy and broken multi-Region secrets")
        self.world = world.seed(self.endpoint)
        env_vars = {
            "AWS_REGION": "us-west-2",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "FINDINGS_TOPIC_ARN": self.world["topic_arn"],
            "STATE_TABLE": self.world["state_table"],
            "RUST_LOG": "info",
            **self.function_env,
        }
        env_file = self.logdir / "function.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env_vars.items()))
        profile = ["--release"] if self.release else []
        say(f"==> building the function ({'release' if self.release else 'dev'} profile)")
        subprocess.run(["cargo", "build", "--quiet", "--bin", FUNCTION, *profile], cwd=ROOT, check=True)
        say(f"==> starting the auditor under cargo lambda watch on 127.0.0.1:{self.watch_port}")
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
        self.watch = start(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--quiet", *profile, "--bin", FUNCTION,
             "-A", "127.0.0.1", "-P", str(self.watch_port), "--env-file", str(env_file),
             "--concurrency", str(self.concurrency)],
            open(self.logdir / "function.log", "w"),
            env=env,
        )
        wait_for_port(self.watch_port, "cargo lambda watch", self.watch)
        return self

    def stop(self):
        stop(self.watch)
        stop(self.moto)

    def invoke_cli(self, data_file=None, data=None):
        """Invoke through `cargo lambda invoke`: (exit code, output)."""
        cmd = [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", FUNCTION,
               "-A", "127.0.0.1", "-P", str(self.watch_port)]
        cmd += ["--data-file", str(data_file)] if data_file else ["--data-ascii", data]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        return out.returncode, (out.stdout + out.stderr).strip()

    def invoke_http(self, payload: bytes, timeout=600):
        """Invoke through the emulator's Invoke API: (ok, parsed body)."""
        url = f"http://127.0.0.1:{self.watch_port}/2015-03-31/functions/{FUNCTION}/invocations"
        req = urllib.request.Request(url, data=payload, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
                failed = resp.headers.get("X-Amz-Function-Error") is not None
        except urllib.error.HTTPError as e:
            body, failed = e.read(), True
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {"raw": body.decode(errors="replace")}
        if isinstance(parsed, dict) and "errorType" in parsed:
            failed = True
        return not failed, parsed

    def drain(self):
        """Every message the findings topic delivered to its SQS queue."""
        return drain(self.endpoint, self.world["queue_url"])

    def function_pids(self):
        """The pids of the function processes this stack's `cargo lambda watch`
        started (its descendants running the function binary), never another
        auditor on this machine."""
        if not self.watch or self.watch.poll() is not None:
            return []
        return sorted(p for p in descendants(self.watch.pid) if program(p) == FUNCTION)


def drain(endpoint, queue_url):
    """Every SNS envelope delivered to the findings queue, deleted as read."""
    sqs = boto3.client("sqs", region_name="us-west-2", endpoint_url=endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        batch = got.get("Messages", [])
        if not batch:
            return messages
        for m in batch:
            messages.append(json.loads(m["Body"]))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def children():
    """Parent pid -> its children's pids, read from /proc/*/stat (a process
    that exits while it is read is left out)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields after
        # its closing one are the state, then the parent's pid.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def descendants(pid):
    """Every process below `pid` (children, their children, ...)."""
    tree, found, todo = children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def program(pid):
    """The file name of the program `pid` runs (its argv[0]), or None once it has exited."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return None
    return Path(argv0.decode(errors="replace")).name


def rss_kib(pid, field="VmRSS"):
    """A memory figure in KiB from /proc/PID/status: VmRSS (now) or VmHWM
    (peak); None when the process has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None
