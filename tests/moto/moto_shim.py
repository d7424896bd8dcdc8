"""moto_shim: moto server with four documented gaps bridged, for tests only.

The product talks to this exactly as it would to AWS; nothing in src/
knows it exists. Each patch below makes moto behave as the real Secrets
Manager API does (see the README's "Testing against moto" section):

1. Replica KMS keys: moto reports every replica's KmsKeyId as
   alias/aws/secretsmanager. Real AWS reports the key the replica was
   created with. Patched: ReplicationStatus carries the requested key.
2. A replica's own description: moto shows the primary's KmsKeyId when a
   replica is described in its Region. Real AWS shows the replica's key
   (none for the AWS-managed key). Patched in ReplicaSecret.to_dict.
3. StopReplicationToReplica: moto has no such action. Patched: calling it
   in a replica's Region turns the replica into a standalone secret with
   the same ARN (as AWS does) and drops the Region from the primary.
4. Atomic DynamoDB: moto's threaded server runs requests concurrently and
   its DynamoDB backend has no lock, so two UpdateItems on one item can
   both read it before either writes, and one update is lost (6 threads
   making 150 conditional `ADD done :one, cells :c` each counted 884 of
   900). DynamoDB itself applies each write atomically per item, and its
   answer (ReturnValues ALL_NEW, ALL_OLD) is the item just before or
   after that write. Patched: one lock serialises every DynamoDB request,
   from reading the item to serialising the answer (DynamoHandler's
   call_action), so every write (PutItem, UpdateItem, DeleteItem,
   BatchWriteItem, TransactWriteItems, PartiQL) is atomic and every read
   sees a whole item. The lock is around the request, not only the
   backend's put_item, update_item, delete_item and transact_write_items:
   in moto 5.2.5 UpdateItem reads the old item and serialises the new one
   in responses.py, outside those methods, and BatchWriteItem's loop lives
   there too (DynamoDBBackend.batch_write_item is an empty stub).
   tests/emulator.rs checks it; SHIM_DYNAMODB_LOCK=off leaves it out, to
   see that test fail.

Not patched, on purpose: re-replicating a Region already listed makes moto
append a duplicate entry. The auditor removes a Failed Region before it
replicates to it again (as AWS requires), so it never meets that quirk, and
tests/remediation.rs checks that exactly one entry remains.

Two knobs model what AWS does that moto cannot, for the tests that need
it (both off by default):
- SHIM_REPLICATION_SECONDS=N: replication is asynchronous in AWS; new
  replicas report InProgress for N seconds before InSync.
- SHIM_REPLICA_STATUS=S: replicas that would be InSync report status S
  instead (a status a future API version may add), to test how the
  auditor treats a status it does not know.

The shim exits when its parent process dies (PR_SET_PDEATHSIG), so a test
that crashes still leaves no server behind.

Usage: python moto_shim.py -p PORT   (binds 127.0.0.1 only)
"""

import ctypes
import functools
import json
import os
import signal
import sys
import threading
import time

from moto.dynamodb.responses import DynamoHandler
from moto.secretsmanager import models
from moto.secretsmanager.exceptions import SecretNotFoundException
from moto.secretsmanager.responses import SecretsManagerResponse

DEFAULT_KEY = models.SecretsManagerBackend.DEFAULT_KMS_KEY_ALIAS


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# 1. Replica keys -----------------------------------------------------------
_original_create_replicas = models.FakeSecret.create_replicas


def create_replicas(self, replica_regions, force_overwrite):
    replicas = _original_create_replicas(self, replica_regions, force_overwrite)
    for replica, requested in zip(replicas, replica_regions or []):
        replica.config["KmsKeyId"] = requested.get("KmsKeyId") or DEFAULT_KEY
        replica.ready_at = time.time() + REPLICATION_SECONDS
    return replicas


models.FakeSecret.create_replicas = create_replicas


# Knobs: asynchronous replication, future statuses -----------------------
REPLICATION_SECONDS = float(os.environ.get("SHIM_REPLICATION_SECONDS", "0"))
STATUS_OVERRIDE = os.environ.get("SHIM_REPLICA_STATUS", "")
_original_to_dict = models.FakeSecret.to_dict


def to_dict(self):
    dct = _original_to_dict(self)
    if "ReplicationStatus" in dct:
        statuses = []
        for entry, replica in zip(dct["ReplicationStatus"], self.replicas):
            entry = dict(entry)
            if entry["Status"] == "InSync" and STATUS_OVERRIDE:
                entry.update(Status=STATUS_OVERRIDE, StatusMessage=f"Replica is {STATUS_OVERRIDE}")
            elif entry["Status"] == "InSync" and time.time() < getattr(replica, "ready_at", 0):
                entry.update(Status="InProgress", StatusMessage="Replication in progress")
            statuses.append(entry)
        dct["ReplicationStatus"] = statuses
    return dct


models.FakeSecret.to_dict = to_dict


# 2. A replica's own description ---------------------------------------------
_original_replica_to_dict = models.ReplicaSecret.to_dict


def replica_to_dict(self):
    dct = _original_replica_to_dict(self)
    key = self.config.get("KmsKeyId")
    if key and key != DEFAULT_KEY:
        dct["KmsKeyId"] = key
    else:
        dct.pop("KmsKeyId", None)
    return dct


models.ReplicaSecret.to_dict = replica_to_dict


# 3. StopReplicationToReplica ------------------------------------------------
def stop_replication_to_replica(self, secret_id):
    replica = self.secrets.get(secret_id)
    if not isinstance(replica, models.ReplicaSecret):
        raise SecretNotFoundException()
    source = replica.source
    source.replicas = [r for r in source.replicas if r.region != self.region_name]
    key = replica.config.get("KmsKeyId")
    version_id = source.default_version_id or "00000000-0000-4000-8000-000000000000"
    standalone = models.FakeSecret(
        account_id=source.account_id,
        region_name=self.region_name,
        secret_id=source.name,
        secret_version=source.versions.get(version_id, {}),
        version_id=version_id,
        secret_string=source.secret_string,
        secret_binary=source.secret_binary,
        description=source.description,
        tags=source.tags,
        kms_key_id=None if key == DEFAULT_KEY else key,
        version_stages=["AWSCURRENT"],
        last_changed_date=source.last_changed_date,
        created_date=source.created_date,
    )
    standalone.arn = replica.arn
    dict.pop(self.secrets, replica.arn, None)
    self.secrets[standalone.arn] = standalone
    return standalone.arn


models.SecretsManagerBackend.stop_replication_to_replica = stop_replication_to_replica


def _stop_replication_response(self):
    arn = self.backend.stop_replication_to_replica(self._get_param("SecretId"))
    return json.dumps({"ARN": arn})


SecretsManagerResponse.stop_replication_to_replica = _stop_replication_response


# 4. Atomic DynamoDB ----------------------------------------------------------
_DYNAMODB_LOCK = threading.Lock()
_original_dynamodb_call_action = DynamoHandler.call_action


@functools.wraps(_original_dynamodb_call_action)
def _dynamodb_call_action(self):
    with _DYNAMODB_LOCK:
        return _original_dynamodb_call_action(self)


if os.environ.get("SHIM_DYNAMODB_LOCK", "on") != "off":
    DynamoHandler.call_action = _dynamodb_call_action


if __name__ == "__main__":
    _die_with_parent()
    from moto.server import main

    main(["-H", "127.0.0.1", *sys.argv[1:]])
