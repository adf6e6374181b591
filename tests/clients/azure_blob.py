"""The official Azure Blob client (azure-storage-blob) for wharf's cross-client checks.

    azure_blob.py get <blob>                 prints "<sha256> <size>" of the blob
    azure_blob.py put <blob> <size> <seed>   uploads deterministic bytes (in 4 MiB
                                             blocks when large), prints "<sha256> <size>"
    azure_blob.py exists <blob>              prints "yes" or "no"
    azure_blob.py count <prefix>             prints the number of blobs under <prefix>
    azure_blob.py blocks <blob>              prints "<committed> <uncommitted>", the
                                             blob's block counts
    azure_blob.py sas                        prints a container SAS token (read, write,
                                             list, delete) valid for an hour

The endpoint, account, key and container come from WHARF_AZ_URL,
WHARF_AZ_ACCOUNT, WHARF_AZ_KEY and WHARF_AZ_CONTAINER.
"""

import datetime
import hashlib
import os
import random
import sys

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

BLOCK = 4 << 20


def container():
    service = BlobServiceClient(
        account_url=os.environ["WHARF_AZ_URL"],
        credential={"account_name": os.environ["WHARF_AZ_ACCOUNT"], "account_key": os.environ["WHARF_AZ_KEY"]},
        max_single_put_size=BLOCK,
        max_block_size=BLOCK,
    )
    return service.get_container_client(os.environ["WHARF_AZ_CONTAINER"])


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


def sas():
    return generate_container_sas(
        account_name=os.environ["WHARF_AZ_ACCOUNT"],
        container_name=os.environ["WHARF_AZ_CONTAINER"],
        account_key=os.environ["WHARF_AZ_KEY"],
        permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sas":
        print(sas())
        return
    blobs = container()
    if cmd == "get":
        h, size = hashlib.sha256(), 0
        for chunk in blobs.download_blob(args[0]).chunks():
            h.update(chunk)
            size += len(chunk)
        print(h.hexdigest(), size)
    elif cmd == "put":
        size = int(args[1])
        stream = Stream(size, int(args[2]))
        blobs.upload_blob(args[0], stream, length=size, overwrite=True)
        print(stream.hash.hexdigest(), size)
    elif cmd == "exists":
        print("yes" if blobs.get_blob_client(args[0]).exists() else "no")
    elif cmd == "count":
        print(sum(1 for _ in blobs.list_blobs(name_starts_with=args[0])))
    elif cmd == "blocks":
        committed, uncommitted = blobs.get_blob_client(args[0]).get_block_list("all")
        print(len(committed), len(uncommitted))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
