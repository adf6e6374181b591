"""Verifies an object stored through wharf's checksum layer (format 2)
without wharf: each chunk's sha256 with its index and last-chunk flag,
then the trailer's length and digest of the chunk digests. Prints the
logical length and the data's sha256; exits 1 naming what failed.

    python3 verify_checksum.py STORED_FILE
"""
import hashlib, struct, sys

f = open(sys.argv[1], "rb")
body = f.seek(0, 2) - 16 - 40  # all but the header and the trailer
f.seek(0)
magic, version, algorithm, chunk, pad = struct.unpack("<6sBBI4s", f.read(16))
if (magic, version, algorithm, pad) != (b"WHFSUM", 2, 1, bytes(4)) or chunk < 1024:
    sys.exit("not an object of the checksum layer's format 2")
step = chunk + 32  # a chunk's data, then its sha256
count = max(1, -(-body // step))  # at least one chunk, the last 0..chunk bytes
last_len = body - (count - 1) * step - 32
if not 0 <= last_len <= chunk or (count > 1 and last_len == 0):
    sys.exit(f"no object of this format is {body + 56} bytes long")
digests, data_hash = hashlib.sha256(), hashlib.sha256()
for index in range(count):
    last = index == count - 1
    data = f.read(last_len if last else chunk)
    digest = f.read(32)
    if hashlib.sha256(struct.pack("<QB", index, last) + data).digest() != digest:
        sys.exit(f"chunk {index}: the sha256 does not match")
    digests.update(digest)
    data_hash.update(data)
length, trailer = struct.unpack("<Q32s", f.read(40))
if length != (count - 1) * chunk + last_len or trailer != digests.digest():
    sys.exit("the trailer does not match the chunks")
print(length, data_hash.hexdigest())
