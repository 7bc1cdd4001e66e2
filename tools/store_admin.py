#!/usr/bin/env python3
"""Object-store housekeeping for tests with each cloud's own SDK (boto3, azure-storage-blob), so what
a test checks in a store is read independently of our storage code.

Usage: store_admin.py COMMAND KIND ENDPOINT BUCKET   (KIND: s3 or azure; BUCKET: bucket or container)
  create    creates the bucket (S3) or container (Azure)
  list      prints {"objects": {key: size}, "incomplete_uploads": [key], "storage_classes": {key: class},
            "encryption": {key: algorithm}} as JSON: every object, the keys of multipart uploads
            started and neither completed nor aborted, and (S3) each object's storage class and
            server-side encryption
  start-upload KEY   (S3) starts a multipart upload of KEY and leaves it unfinished
  freeze-on-upload PID   (S3) prints "ready" once it polls, then every 10 ms until a multipart
            upload is under way, freezes the emulator process PID with SIGSTOP (the test resumes
            it) and prints the upload's key
  freeze-on-object KEY PID   (S3) polls every 5 ms until object KEY exists, then freezes the
            emulator process PID with SIGSTOP
The Azure account is the emulator's well-known devstoreaccount1; S3 takes any key pair.
"""
import json
import os
import signal
import sys
import time

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def s3(endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def azure(endpoint, container):
    from azure.storage.blob import BlobServiceClient
    service = BlobServiceClient(account_url=endpoint, credential={"account_name": "devstoreaccount1", "account_key": AZURITE_KEY})
    return service.get_container_client(container)


def main():
    command, kind, endpoint, bucket = sys.argv[1:5]
    if (command, kind) == ("create", "s3"):
        s3(endpoint).create_bucket(Bucket=bucket)
    elif (command, kind) == ("create", "azure"):
        azure(endpoint, bucket).create_container()
    elif (command, kind) == ("list", "s3"):
        client = s3(endpoint)
        objects, classes, encryption = {}, {}, {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                objects[o["Key"]] = o["Size"]
                classes[o["Key"]] = o.get("StorageClass", "STANDARD")
                head = client.head_object(Bucket=bucket, Key=o["Key"])
                encryption[o["Key"]] = head.get("ServerSideEncryption", "none")
        uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        print(json.dumps({"objects": objects, "incomplete_uploads": uploads, "storage_classes": classes,
                          "encryption": encryption}))
    elif (command, kind) == ("list", "azure"):
        objects = {b.name: b.size for b in azure(endpoint, bucket).list_blobs()}
        print(json.dumps({"objects": objects, "incomplete_uploads": [], "storage_classes": {}, "encryption": {}}))
    elif (command, kind) == ("start-upload", "s3"):
        s3(endpoint).create_multipart_upload(Bucket=bucket, Key=sys.argv[5])
    elif (command, kind) == ("freeze-on-upload", "s3"):
        client, pid = s3(endpoint), int(sys.argv[5])
        client.list_multipart_uploads(Bucket=bucket)
        print("ready", flush=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            if uploads:
                os.kill(pid, signal.SIGSTOP)
                print(uploads[0]["Key"])
                return
            time.sleep(0.01)
        raise SystemExit("no multipart upload started within 120 s")
    elif (command, kind) == ("freeze-on-object", "s3"):
        client, key, pid = s3(endpoint), sys.argv[5], int(sys.argv[6])
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                client.head_object(Bucket=bucket, Key=key)
            except client.exceptions.ClientError:
                time.sleep(0.005)
                continue
            os.kill(pid, signal.SIGSTOP)
            return
        raise SystemExit(f"no object {key} within 120 s")
    else:
        raise SystemExit(f"unknown command {command} {kind}")


if __name__ == "__main__":
    main()
