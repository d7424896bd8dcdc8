"""Seed a moto server with a small AWS Organization for the org sweep's tests
(tests/org_sweep.rs) and `make bench-org`.

Usage: python org_world.py ENDPOINT_URL MEMBERS HEALTHY [BULK_REGIONS]
  MEMBERS  member accounts to create besides the management account (moto's
           default 123456789012, where the auditor runs)
  HEALTHY  healthy replicated secrets per account (account i gets HEALTHY + i,
           so that every account's counts differ), or, with BULK_REGIONS
           (comma-separated), exactly HEALTHY healthy primaries in each of
           those Regions and nothing else (the benchmark's world)

Prints the world as JSON: the accounts (management first, then the members
in the order made), what each account holds, and the auditor's resources in
the management account: the findings topic with an SQS inbox, the state
table, the sweep queue and its dead-letter queue (maxReceiveCount 2).

Each account, entered through the member role (moto honours AssumeRole into
any account; it does not check the role exists), holds by default:
  - HEALTHY + i secrets in us-west-2 replicated to eu-west-1 (AWS-managed
    key on both sides): audited, no finding;
  - production/Weak in us-west-2 on a customer key, its eu-west-1 replica on
    the AWS-managed key: REPLICA_KEY_WEAKER_THAN_PRIMARY;
  - production/EuPrimary in eu-west-1 replicated to us-west-2: audited by
    the eu-west-1 cell (its us-west-2 replica is not audited twice);
  - production/Single in us-west-2, not replicated: seen, not audited.
"""

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3

from world import findings_inbox, state_table

MANAGEMENT = "123456789012"
WEST = "us-west-2"
EU = "eu-west-1"
MEMBER_ROLE = "ReplicaAuditorMember"


_local = threading.local()


def session(endpoint, creds=None):
    """Clients as `creds` (the own account's by default), from this
    thread's boto3 session (a session is not shared between threads)."""
    creds = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing", "SessionToken": None}
    if not hasattr(_local, "session"):
        _local.session = boto3.session.Session()
    return lambda service, region: _local.session.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )


def seed_account(client, healthy):
    held = {"primaries": [], "audited": [], "weak": []}
    sm = {r: client("secretsmanager", r) for r in (WEST, EU)}
    for i in range(healthy):
        name = f"app/healthy-{i:03d}"
        sm[WEST].create_secret(Name=name, SecretString="x", AddReplicaRegions=[{"Region": EU}])
        held["primaries"].append(name)
        held["audited"].append(name)
    cmk = client("kms", WEST).create_key(Description="app-west")["KeyMetadata"]["Arn"]
    sm[WEST].create_secret(
        Name="production/Weak", SecretString="x", KmsKeyId=cmk, AddReplicaRegions=[{"Region": EU}]
    )
    sm[EU].create_secret(Name="production/EuPrimary", SecretString="x", AddReplicaRegions=[{"Region": WEST}])
    sm[WEST].create_secret(Name="production/Single", SecretString="x")
    held["primaries"] += ["production/Weak", "production/EuPrimary", "production/Single"]
    held["audited"] += ["production/Weak", "production/EuPrimary"]
    held["weak"].append("production/Weak")
    return held


def seed_bulk(client, count, regions):
    held = {"primaries": [], "audited": [], "weak": []}
    for r, region in enumerate(regions):
        sm = client("secretsmanager", region)
        other = WEST if region != WEST else EU
        for i in range(count):
            # No Region name in a secret's name: moto names a replica by
            # replacing the Region in the primary's ARN, name included.
            name = f"bulk/r{r}-{i:03d}"
            sm.create_secret(Name=name, SecretString="x", AddReplicaRegions=[{"Region": other}])
            held["primaries"].append(name)
            held["audited"].append(name)
    return held


def sweep_queues(client):
    """The sweep queue and its dead-letter queue, as the template makes them
    (the DLQ takes a message after maxReceiveCount deliveries)."""
    sqs = client("sqs", WEST)
    dlq = sqs.create_queue(QueueName="replica-auditor-sweep-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="replica-auditor-sweep",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})},
    )["QueueUrl"]
    return queue, dlq


def seed(endpoint, members, healthy, bulk_regions=None):
    own = session(endpoint)
    orgs = own("organizations", "us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    accounts = [MANAGEMENT]
    for i in range(members):
        made = orgs.create_account(AccountName=f"member-{i}", Email=f"member-{i}@example.com")
        accounts.append(made["CreateAccountStatus"]["AccountId"])
    world = {"accounts": accounts, "held": {}}

    def seed_one(i, account):
        if account == MANAGEMENT:
            client = session(endpoint)
        else:
            creds = session(endpoint)("sts", WEST).assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{MEMBER_ROLE}", RoleSessionName="seed"
            )["Credentials"]
            client = session(endpoint, creds)
        if bulk_regions:
            return seed_bulk(client, healthy, bulk_regions)
        return seed_account(client, healthy + i)

    # Accounts seeded side by side (the benchmark's 2,000 would take minutes
    # one after another); each thread has its own boto3 session.
    with ThreadPoolExecutor(max_workers=8 if len(accounts) > 50 else 1) as pool:
        held = list(pool.map(seed_one, range(len(accounts)), accounts))
    world["held"] = dict(zip(accounts, held))
    topic, inbox = findings_inbox(endpoint)
    queue, dlq = sweep_queues(own)
    world.update(
        {
            "topic_arn": topic,
            "queue_url": inbox,
            "state_table": state_table(endpoint),
            "sweep_queue_url": queue,
            "sweep_dlq_url": dlq,
        }
    )
    return world


if __name__ == "__main__":
    regions = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    print(json.dumps(seed(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), regions), indent=2))
