"""The official S3 client (boto3) for wharf's cross-client checks.

    aws_s3.py get <key>                  prints "<sha256> <size>" of the object
    aws_s3.py put <key> <size> <seed>    uploads deterministic bytes (multipart
                                         when large), prints "<sha256> <size>"
    aws_s3.py uploads <prefix>           prints the number of pending multipart
                                         uploads under <prefix>
    aws_s3.py exists <key>               prints "yes" or "no"

The endpoint, bucket and credentials come from WHARF_S3_ENDPOINT,
WHARF_S3_BUCKET, WHARF_S3_ACCESS_KEY and WHARF_S3_SECRET_KEY.
"""

import hashlib
import os
import random
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["WHARF_S3_ENDPOINT"],
        aws_access_key_id=os.environ["WHARF_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["WHARF_S3_SECRET_KEY"],
        region_name="us-east-1",
    )


class Stream:
    """Deterministic bytes, produced while read, hashed on the way."""

    def __init__(self, size, seed):
        self.left = size
        self.rng = random.Random(seed)
        self.hash = hashlib.sha256()

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.rng.randbytes(n)
        self.left -= n
        self.hash.update(data)
        return data


def main():
    bucket = os.environ["WHARF_S3_BUCKET"]
    s3 = client()
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "get":
        body = s3.get_object(Bucket=bucket, Key=args[0])["Body"]
        h, size = hashlib.sha256(), 0
        for chunk in iter(lambda: body.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
        print(h.hexdigest(), size)
    elif cmd == "put":
        stream = Stream(int(args[1]), int(args[2]))
        config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
        s3.upload_fileobj(stream, bucket, args[0], Config=config)
        print(stream.hash.hexdigest(), int(args[1]))
    elif cmd == "uploads":
        uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=args[0]).get("Uploads", [])
        print(len(uploads))
    elif cmd == "exists":
        try:
            s3.head_object(Bucket=bucket, Key=args[0])
            print("yes")
        except ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
                raise
            print("no")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
