"""rage (through pyrage) on the encryption layer's objects, as a program
without wharf would: decrypting what wharf stored, encrypting what wharf
then reads.

    age_client.py decrypt <identity file> <in>         prints "<sha256> <size>"
    age_client.py decrypt-passphrase <passphrase> <in> prints "<sha256> <size>"
    age_client.py encrypt <in> <out> <recipient>...
    age_client.py encrypt-passphrase <in> <out> <passphrase>
"""

import hashlib
import sys

import pyrage
from pyrage import passphrase, x25519


def show(data: bytes) -> None:
    print(hashlib.sha256(data).hexdigest(), len(data))


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "decrypt":
    with open(args[0]) as f:
        lines = [line.strip() for line in f]
    identities = [x25519.Identity.from_str(line) for line in lines if line and not line.startswith("#")]
    show(pyrage.decrypt(read(args[1]), identities))
elif cmd == "decrypt-passphrase":
    show(passphrase.decrypt(read(args[1]), args[0]))
elif cmd == "encrypt":
    recipients = [x25519.Recipient.from_str(r) for r in args[2:]]
    write(args[1], pyrage.encrypt(read(args[0]), recipients))
elif cmd == "encrypt-passphrase":
    write(args[1], passphrase.encrypt(read(args[0]), args[2]))
else:
    sys.exit(f"unknown command {cmd}")
