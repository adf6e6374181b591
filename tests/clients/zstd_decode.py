"""Python's zstandard decoding an object wharf's compression layer stored,
as a program without wharf would: one stream across all frames (the
skippable ones are skipped).

    zstd_decode.py <file>    prints the sha256 of the decoded bytes
"""

import hashlib
import sys

import zstandard

digest = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    while chunk := reader.read(1 << 20):
        digest.update(chunk)
print(digest.hexdigest())
