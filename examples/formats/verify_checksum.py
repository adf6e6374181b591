"""Verifies an object stored through wharf's checksum layer (format 2)
without wharf: each chunk's digest with its index and last-chunk flag,
then the trailer's length and digest of the chunk digests. Algorithm 1 is
sha256 (hashlib), 2 is BLAKE3 (`pip install blake3`). Prints the logical
length and the data's sha256; exits 1 naming what failed.

    python3 verify_checksum.py STORED_FILE
"""
import hashlib, struct, sys

f = open(sys.argv[1], "rb")
body = f.seek(0, 2) - 16 - 40  # all but the header and the trailer
f.seek(0)
magic, version, algorithm, chunk, pad = struct.unpack("<6sBBI4s", f.read(16))
if (magic, version, pad) != (b"WHFSUM", 2, bytes(4)) or algorithm not in (1, 2) or chunk < 1024:
    sys.exit("not an object of the checksum layer's format 2")
if algorithm == 1:
    H, name = hashlib.sha256, "sha256"
else:
    from blake3 import blake3 as H
    name = "blake3"
step = chunk + 32  # a chunk's data, then its digest
count = max(1, -(-body // step))  # at least one chunk, the last 0..chunk bytes
last_len = body - (count - 1) * step - 32
if not 0 <= last_len <= chunk or (count > 1 and last_len == 0):
    sys.exit(f"no object of this format is {body + 56} bytes long")
digests, data_hash = H(), hashlib.sha256()
for index in range(count):
    last = index == count - 1
    data = f.read(last_len if last else chunk)
    digest = f.read(32)
    if H(struct.pack("<QB", index, last) + data).digest() != digest:
        sys.exit(f"chunk {index}: the {name} does not match")
    digests.update(digest)
    data_hash.update(data)
length, trailer = struct.unpack("<Q32s", f.read(40))
if length != (count - 1) * chunk + last_len or trailer != digests.digest():
    sys.exit("the trailer does not match the chunks")
print(length, data_hash.hexdigest())
