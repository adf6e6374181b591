"""The S3 side of the MLflow server whose artifact destination is a bucket
(boto3, straight to the S3 server), for wharf's multipart checks.

    mlflow_s3.py etag <key>          prints the object's ETag (a multipart
                                     upload's ends in -<parts>)
    mlflow_s3.py uploads <prefix>    prints the number of pending multipart
                                     uploads under <prefix>
    mlflow_s3.py exists <key>        prints "yes" or "no"

The S3 endpoint and bucket come from WHARF_MLFLOW_S3_STORE and
WHARF_MLFLOW_S3_BUCKET (moto accepts any credentials).
"""

import os
import sys

import boto3
from botocore.exceptions import ClientError


def main():
    bucket = os.environ["WHARF_MLFLOW_S3_BUCKET"]
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["WHARF_MLFLOW_S3_STORE"],
        aws_access_key_id="moto-key",
        aws_secret_access_key="moto-secret",
        region_name="us-east-1",
    )
    cmd, arg = sys.argv[1], sys.argv[2]
    if cmd == "etag":
        print(s3.head_object(Bucket=bucket, Key=arg)["ETag"].strip('"'))
    elif cmd == "uploads":
        print(len(s3.list_multipart_uploads(Bucket=bucket, Prefix=arg).get("Uploads", [])))
    elif cmd == "exists":
        try:
            s3.head_object(Bucket=bucket, Key=arg)
            print("yes")
        except ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
                raise
            print("no")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
