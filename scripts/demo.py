"""The demo: the auditor end to end on this machine, no AWS account needed.

1. starts moto (tests/moto/moto_shim.py) on a free 127.0.0.1 port;
2. seeds a small account with healthy and broken multi-Region secrets
   (tests/moto/world.py) and an SNS topic with an SQS subscriber;
3. runs the auditor under `cargo lambda watch` against that moto;
4. sends it every sample event in events/ (plus one malformed event) with
   `cargo lambda invoke`;
5. prints the reports that arrived on the SNS topic;
6. runs the command line against the same moto: `replica-auditor audit` of
   two broken secrets as a table, and `replica-auditor sweep` as JSON Lines;
7. stops everything it started.

Run it with `make demo` (which installs what it needs first).
"""

import json
import os
import subprocess

from local_stack import ROOT, LocalStack


def cli(stack, *args):
    """Run the command line against the demo's moto; its exit status and stdout."""
    env = {**os.environ, "AWS_ENDPOINT_URL": stack.endpoint, "AWS_REGION": "us-west-2",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.pop("AWS_PROFILE", None)
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
    out = subprocess.run([os.path.join(target, "debug", "replica-auditor"), *args], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode not in (0, 1):
        raise SystemExit(f"demo: replica-auditor {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.returncode, out.stdout


def main():
    stack = LocalStack(function_env={"ALLOWED_REGIONS": "us-west-2,us-east-1", "MIN_SEVERITY": "LOW"})
    try:
        stack.start()
        for name, arn in stack.world["secrets"].items():
            print(f"    {name:34} {arn}")

        print("==> sending the sample events")
        failures = 0
        for path in sorted((ROOT / "events").glob("*.json")):
            code, out = stack.invoke_cli(data_file=path)
            if code == 0:
                result = json.loads(out)
                summary = result.get("summary", {})
                if "sweep" in result:
                    sw = result["sweep"]
                    what = (f"sweep: {sw['secrets_seen']} secrets seen, {sw['secrets_audited']} audited, "
                            f"{sw['secrets_with_findings']} with findings; reports and a summary published")
                elif result.get("status") == "ignored":
                    what = f"ignored ({result['event_name']}: not an event the auditor acts on)"
                elif "status" in result:
                    # The account list's scheduled refresh: its answer.
                    detail = result.get("reason") or f"{result.get('accounts')} accounts"
                    what = f"account list refresh: {result['status']} ({detail})"
                elif summary.get("count"):
                    what = f"{summary['count']} finding(s), highest {summary['highest_severity']}: published"
                else:
                    what = "healthy: no findings, nothing published"
            else:
                failures += 1
                what = f"ERROR: {out}"
            print(f"    {path.name:46} {what}")
        code, out = stack.invoke_cli(data='{"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail"}')
        reason = next((line.strip() for line in out.splitlines() if "malformed event" in line), out)
        print(f"    {'(a malformed event)':46} {'rejected: ' + reason if code else 'UNEXPECTEDLY ACCEPTED'}")
        code2, _ = stack.invoke_cli(data_file=ROOT / "events" / "create-secret.json")
        print(f"    {'(the next event)':46} {'served normally' if code2 == 0 else 'FAILED'}")
        failures += (code == 0) + (code2 != 0)

        messages = stack.drain()
        print(f"\n==> {len(messages)} report(s) arrived on {stack.world['topic_arn']}\n")
        for m in messages:
            report = json.loads(m["Message"])
            print(m["Subject"])
            for f in report["findings"]:
                print(f"  - {f['severity']:8} {f['code']:32} {f['region'] or '-':10} {f['message']}")
            print()
        if messages:
            print("==> one report in full (the SNS message body):")
            print(messages[0]["Message"])

        print("\n==> the command line against the same account (cargo build --bin replica-auditor)")
        subprocess.run(["cargo", "build", "--quiet", "--bin", "replica-auditor"], cwd=ROOT, check=True)
        args = ["audit", "production/Clash", "production/DoomedKey", "--format", "table"]
        print(f"$ replica-auditor {' '.join(args)}")
        code, out = cli(stack, *args)
        print(out.rstrip())
        print(f"(exit {code}: findings at or above --fail-on LOW)")
        args = ["sweep", "--format", "json"]
        print(f"\n$ replica-auditor {' '.join(args)}")
        code, out = cli(stack, *args)
        lines = out.splitlines()
        for line in lines[:2]:
            print(line[:160] + ("..." if len(line) > 160 else ""))
        if len(lines) > 3:
            print(f"... {len(lines) - 3} more JSON lines ...")
        summary = json.loads(lines[-1])["sweep"]
        print(f"(the last line is the summary: {summary['secrets_seen']} secrets seen, "
              f"{summary['secrets_with_findings']} with findings; exit {code})")
        print(f"\nfunction logs: {stack.logdir / 'function.log'}")
        if failures:
            raise SystemExit(f"demo: {failures} invocation(s) did not behave as expected")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
