"""Seed a member account of the organisation in a moto server, entered as
the auditor enters it: AssumeRole into arn:aws:iam::ACCOUNT:role/ROLE
(moto returns credentials that act in that account, with its own secrets
and keys). Used by tests/accounts.rs and the org-wide tests.

Usage: python member.py ENDPOINT_URL ACCOUNT [ROLE]   -> prints the
member's secrets and keys as JSON

The member has, primaries in us-west-2:
- member/Healthy: customer keys on both sides, replicated to us-east-1;
- member/Clash: its us-east-1 replica failed (a same-named secret there).
"""

import json
import sys

import boto3

PRIMARY = "us-west-2"
EAST = "us-east-1"
SUFFIX = "MeMbEr"


def member_session(endpoint, account, role):
    sts = boto3.client(
        "sts",
        region_name=PRIMARY,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="seed")["Credentials"]
    return boto3.Session(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
    )


def seed(endpoint, account, role="ReplicaAuditorMember"):
    session = member_session(endpoint, account, role)
    kms = {r: session.client("kms", region_name=r, endpoint_url=endpoint) for r in (PRIMARY, EAST)}
    sm = {r: session.client("secretsmanager", region_name=r, endpoint_url=endpoint) for r in (PRIMARY, EAST)}
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    keys = {r: kms[r].create_key(Description="member", Policy=json.dumps(policy))["KeyMetadata"]["Arn"] for r in kms}
    member = {"account": account, "keys": keys, "secrets": {}}

    def secret(name):
        arn = sm[PRIMARY].create_secret(
            Name=name,
            SecretString="member-value-never-read-by-the-auditor",
            KmsKeyId=keys[PRIMARY],
            Tags=[{"Key": "_custom_id_", "Value": SUFFIX}],
            AddReplicaRegions=[{"Region": EAST, "KmsKeyId": keys[EAST]}],
        )["ARN"]
        member["secrets"][name] = arn

    secret("member/Healthy")
    sm[EAST].create_secret(Name="member/Clash", SecretString="someone else's")
    secret("member/Clash")
    return member


if __name__ == "__main__":
    role = sys.argv[3] if len(sys.argv) > 3 else "ReplicaAuditorMember"
    print(json.dumps(seed(sys.argv[1], sys.argv[2], role)))
