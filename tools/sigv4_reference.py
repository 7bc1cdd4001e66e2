#!/usr/bin/env python3
"""The SigV4 signature botocore's presigner (SigV4QueryAuth, as aws-msk-iam-sasl-signer uses it)
gives `GET https://HOST/?Action=kafka-cluster:Connect` for service kafka-cluster, valid 900 s,
signed at TIMESTAMP (YYYYMMDDTHHMMSSZ): the independent reference of our AWS_MSK_IAM signature.
  sigv4_reference.py HOST REGION ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN|- TIMESTAMP"""
import sys
from urllib.parse import parse_qs, urlsplit

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

host, region, key_id, secret, token, timestamp = sys.argv[1:7]
signer = SigV4QueryAuth(Credentials(key_id, secret, None if token == "-" else token), "kafka-cluster", region, 900)
request = AWSRequest(method="GET", url=f"https://{host}/?Action=kafka-cluster%3AConnect")
request.context["timestamp"] = timestamp  # what add_auth sets from the clock
signer._modify_request_before_signing(request)
signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
signer._inject_signature_to_request(request, signature)
print(parse_qs(urlsplit(request.url).query)["X-Amz-Signature"][0])
