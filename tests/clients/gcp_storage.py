"""A plain GCS JSON-API client (requests only) for wharf's cross-client checks,
and the key tooling of the service-account test.

    gcp_storage.py get <name>                 prints "<sha256> <size>" of the object
                                              (GET ...?alt=media)
    gcp_storage.py put <name> <size> <seed>   uploads deterministic bytes with a
                                              resumable upload in 2 MiB chunks,
                                              prints "<sha256> <size>"
    gcp_storage.py keygen <dir> <token_uri> <email>
                                              writes <dir>/key.json (a test-only
                                              service-account key) and
                                              <dir>/public.pem
    gcp_storage.py verify-jwt <public.pem> <jwt>
                                              checks the RS256 signature, prints
                                              {"header": ..., "claims": ...}
    gcp_storage.py no-soft-delete             sets the bucket's soft-delete
                                              retention to 0 (idempotent)

The endpoint and bucket come from WHARF_GCS_ENDPOINT and WHARF_GCS_BUCKET.
"""

import base64
import hashlib
import json
import os
import random
import sys
from urllib.parse import quote

import requests

CHUNK = 2 << 20


def object_url(name):
    endpoint = os.environ["WHARF_GCS_ENDPOINT"]
    bucket = os.environ["WHARF_GCS_BUCKET"]
    return f"{endpoint}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"


def get(name):
    with requests.get(object_url(name), params={"alt": "media"}, stream=True, timeout=120) as r:
        r.raise_for_status()
        h, size = hashlib.sha256(), 0
        for chunk in r.iter_content(1 << 20):
            h.update(chunk)
            size += len(chunk)
    print(h.hexdigest(), size)


def put(name, size, seed):
    endpoint = os.environ["WHARF_GCS_ENDPOINT"]
    bucket = os.environ["WHARF_GCS_BUCKET"]
    start = requests.post(
        f"{endpoint}/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "resumable", "name": name},
        timeout=60,
    )
    start.raise_for_status()
    session = start.headers["Location"]
    rng, h, sent = random.Random(seed), hashlib.sha256(), 0
    while sent < size:
        data = rng.randbytes(min(CHUNK, size - sent))
        h.update(data)
        last = sent + len(data) == size
        total = str(size) if last else "*"
        r = requests.put(
            session,
            data=data,
            headers={"Content-Range": f"bytes {sent}-{sent + len(data) - 1}/{total}"},
            timeout=120,
        )
        if r.status_code not in ((200, 201) if last else (308,)):
            sys.exit(f"chunk at {sent}: HTTP {r.status_code} {r.text}")
        sent += len(data)
    print(h.hexdigest(), size)


def no_soft_delete():
    """Deleted objects are dropped at once instead of kept for 7 days.

    The emulator keeps soft-deleted objects (content and metadata) and rewrites
    its whole metadata file on every write, so without this each test run
    makes every later write slower.
    """
    endpoint = os.environ["WHARF_GCS_ENDPOINT"]
    bucket = os.environ["WHARF_GCS_BUCKET"]
    r = requests.patch(
        f"{endpoint}/storage/v1/b/{bucket}",
        json={"softDeletePolicy": {"retentionDurationSeconds": "0"}},
        timeout=60,
    )
    r.raise_for_status()


def keygen(directory, token_uri, email):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = {
        "type": "service_account",
        "project_id": "wharf-test",
        "private_key_id": "wharf-test-key",
        "private_key": private_pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": token_uri,
    }
    with open(os.path.join(directory, "key.json"), "w") as f:
        json.dump(key_file, f)
    with open(os.path.join(directory, "public.pem"), "wb") as f:
        f.write(public_pem)


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jwt(public_pem_path, jwt):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    with open(public_pem_path, "rb") as f:
        public_key = serialization.load_pem_public_key(f.read())
    header, claims, signature = jwt.split(".")
    # Raises InvalidSignature (a non-zero exit) when the signature is wrong.
    public_key.verify(
        b64url_decode(signature),
        f"{header}.{claims}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    print(json.dumps({"header": json.loads(b64url_decode(header)), "claims": json.loads(b64url_decode(claims))}))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "get":
        get(args[0])
    elif cmd == "put":
        put(args[0], int(args[1]), int(args[2]))
    elif cmd == "keygen":
        keygen(args[0], args[1], args[2])
    elif cmd == "verify-jwt":
        verify_jwt(args[0], args[1])
    elif cmd == "no-soft-delete":
        no_soft_delete()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
