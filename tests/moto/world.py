"""Seed a moto server with a small account of healthy and broken
multi-Region secrets. Used by the integration tests and by the demo.

Usage: python world.py ENDPOINT_URL [BULK]   -> prints the world as JSON
BULK (default 0) adds that many healthy replicated secrets `bulk/secret-NNNN`
for sweep tests and benchmarks.

Account 123456789012 (moto's default); primaries in us-west-2. Every
secret gets a fixed ARN suffix (moto's `_custom_id_` tag) so that the
sample events in events/ name real ARNs.
"""

import json
import sys

import boto3

ACCOUNT = "123456789012"
PRIMARY = "us-west-2"
EAST = "us-east-1"
EU = "eu-west-1"
SUFFIX = "AbCdEf"
STRANGER = "999988887777"


def client(service, region, endpoint):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def own_policy():
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def seed(endpoint, bulk=0):
    kms = {r: client("kms", r, endpoint) for r in (PRIMARY, EAST, EU)}
    sm = {r: client("secretsmanager", r, endpoint) for r in (PRIMARY, EAST, EU)}
    world = {"account": ACCOUNT, "keys": {}, "secrets": {}}

    def key(region, alias, policy=None):
        k = kms[region].create_key(Description=alias, Policy=json.dumps(policy or own_policy()))
        arn = k["KeyMetadata"]["Arn"]
        kms[region].create_alias(AliasName=f"alias/{alias}", TargetKeyId=arn)
        world["keys"][f"{region}/{alias}"] = arn
        return arn

    def secret(name, key_arn=None, replicas=(), tags=()):
        args = {
            "Name": name,
            "SecretString": "demo-value-never-read-by-the-auditor",
            "Tags": [{"Key": "_custom_id_", "Value": SUFFIX}, *tags],
        }
        if key_arn:
            args["KmsKeyId"] = key_arn
        if replicas:
            args["AddReplicaRegions"] = [
                {"Region": r, **({"KmsKeyId": k} if k else {})} for r, k in replicas
            ]
        arn = sm[PRIMARY].create_secret(**args)["ARN"]
        world["secrets"][name] = arn
        return arn

    west_cmk = key(PRIMARY, "app-west")
    east_cmk = key(EAST, "app-east")

    # Healthy: customer keys on both sides, InSync.
    secret("production/DBWest", west_cmk, [(EAST, east_cmk)])
    # Name clash: a different secret with the same name already in us-east-1.
    sm[EAST].create_secret(Name="production/Clash", SecretString="someone else's")
    secret("production/Clash", west_cmk, [(EAST, east_cmk)])
    # Replica key disabled.
    disabled = key(EAST, "disabled-east")
    kms[EAST].disable_key(KeyId=disabled.split("/")[-1])
    secret("production/DisabledKey", west_cmk, [(EAST, disabled)])
    # Replica key scheduled for deletion.
    doomed = key(EAST, "doomed-east")
    kms[EAST].schedule_key_deletion(KeyId=doomed.split("/")[-1], PendingWindowInDays=7)
    secret("production/DoomedKey", west_cmk, [(EAST, doomed)])
    # A name clash on a replica whose key is disabled too.
    sm[EAST].create_secret(Name="production/ClashOnDisabledKey", SecretString="someone else's")
    secret("production/ClashOnDisabledKey", west_cmk, [(EAST, disabled)])
    # Primary key open to everyone.
    public_policy = own_policy()
    public_policy["Statement"].append(
        {"Sid": "OpenToAll", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
    )
    secret("production/PublicKey", key(PRIMARY, "public-west", public_policy), [(EAST, east_cmk)])
    # Primary key shared with an account that is not trusted.
    partner_policy = own_policy()
    partner_policy["Statement"].append(
        {
            "Sid": "ShareWithVendor",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{STRANGER}:root"},
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": "*",
        }
    )
    secret("production/PartnerKey", key(PRIMARY, "partner-west", partner_policy), [(EAST, east_cmk)])
    # Replica on the AWS-managed key while the primary has a customer key.
    secret("production/WeakReplica", west_cmk, [(EAST, None)])
    # Replicated to eu-west-1 only; its tag requires us-east-1.
    secret(
        "production/EuReplica",
        west_cmk,
        [(EU, None)],
        tags=[{"Key": "replica-auditor:required-regions", "Value": EAST}],
    )
    # Promoted: the us-east-1 replica became a standalone secret.
    secret("production/Promoted", west_cmk, [(EAST, east_cmk)])
    sm[EAST].stop_replication_to_replica(SecretId="production/Promoted")
    world["secrets"]["production/Promoted@us-east-1"] = world["secrets"]["production/Promoted"].replace(PRIMARY, EAST)
    # Replica key that does not exist in us-east-1.
    secret("production/LostKey", west_cmk, [(EAST, "alias/deleted-east")])
    # Listed InSync in us-east-1, but a primary in eu-west-1 force-overwrote
    # that Region's copy: the secret there is not a replica of this primary.
    secret("production/Hijacked", west_cmk, [(EAST, east_cmk)])
    sm[EU].create_secret(
        Name="production/Hijacked",
        SecretString="another team's value",
        Tags=[{"Key": "_custom_id_", "Value": SUFFIX}],
        AddReplicaRegions=[{"Region": EAST}],
        ForceOverwriteReplicaSecret=True,
    )
    # Deleted: existed once, gone now.
    retired = secret("production/Retired")
    sm[PRIMARY].delete_secret(SecretId=retired, ForceDeleteWithoutRecovery=True)

    # Healthy replicated secrets in bulk, sharing the two customer keys.
    for i in range(bulk):
        sm[PRIMARY].create_secret(
            Name=f"bulk/secret-{i:04d}",
            SecretString="bulk",
            KmsKeyId=west_cmk,
            AddReplicaRegions=[{"Region": EAST, "KmsKeyId": east_cmk}],
        )
    world["bulk"] = bulk

    topic, queue_url = findings_inbox(endpoint)
    world.update({"topic_arn": topic, "queue_url": queue_url, "state_table": state_table(endpoint)})
    return world


STATE_TABLE = "replica-auditor-state"


def state_table(endpoint):
    """The auditor's state table (remediation leases), as the template makes
    it: partition key pk (String), on demand, TTL on expires_at."""
    ddb = client("dynamodb", PRIMARY, endpoint)
    ddb.create_table(
        TableName=STATE_TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True},
    )
    ddb.update_time_to_live(
        TableName=STATE_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    return STATE_TABLE


def findings_inbox(endpoint):
    """The findings topic with an SQS subscriber to read back what is
    published: (topic ARN, queue URL)."""
    sns = client("sns", PRIMARY, endpoint)
    sqs = client("sqs", PRIMARY, endpoint)
    topic = sns.create_topic(Name="replica-auditor-findings")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="findings-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


if __name__ == "__main__":
    print(json.dumps(seed(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0), indent=2))
