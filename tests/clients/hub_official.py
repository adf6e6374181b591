"""The official Hugging Face Hub client (huggingface_hub) for wharf's checks
against tests/hub/server.py.

    hub_official.py create <repo_id> <type>       creates the repo; prints its URL
    hub_official.py fidelity <repo_id>            the client's whole round trip (see below);
                                                  prints a JSON summary
    hub_official.py put <repo_id> <path> <size> <seed> [type]
                                                  uploads deterministic bytes with
                                                  upload_file; prints "<sha256> <size>"
    hub_official.py get <repo_id> <path> [type]   hf_hub_download; prints "<sha256> <size>"

The endpoint and token come from WHARF_HUB_URL and WHARF_HUB_TOKEN (set as
HF_ENDPOINT / HF_TOKEN before huggingface_hub is imported). Xet is switched
off (HF_HUB_DISABLE_XET=1): huggingface_hub 1.x uploads through Xet whenever
the hf_xet package is installed, whatever the server advertises, and the
test server speaks only the LFS protocol.
"""

import hashlib
import json
import os
import random
import sys
import tempfile

os.environ["HF_ENDPOINT"] = os.environ["WHARF_HUB_URL"]
os.environ["HF_TOKEN"] = os.environ["WHARF_HUB_TOKEN"]
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
# A cache of our own, removed when the script ends.
_HF_HOME = tempfile.TemporaryDirectory(prefix="wharf-hf-home-")
os.environ.setdefault("HF_HOME", _HF_HOME.name)

from huggingface_hub import (  # noqa: E402
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
)
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402
from huggingface_hub.utils import _pagination, _runtime  # noqa: E402

# Counts the pages list_repo_tree fetches after the first (its `Link` rel="next").
_next_pages = []
_http_backoff = _pagination.http_backoff


def _counting_backoff(*args, **kwargs):
    _next_pages.append(args[1] if len(args) > 1 else kwargs.get("url"))
    return _http_backoff(*args, **kwargs)


_pagination.http_backoff = _counting_backoff


def deterministic_file(directory, name, size, seed):
    """Writes `size` seeded bytes to directory/name; returns (path, sha256 hex)."""
    rng, h = random.Random(seed), hashlib.sha256()
    path = os.path.join(directory, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = rng.randbytes(min(left, 1 << 20))
            h.update(piece)
            f.write(piece)
            left -= len(piece)
    return path, h.hexdigest()


def file_hash(path):
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
            size += len(piece)
    return f"{h.hexdigest()} {size}"


def download(repo_id, path, repo_type=None):
    with tempfile.TemporaryDirectory() as cache:
        local = hf_hub_download(repo_id, path, repo_type=repo_type, cache_dir=cache)
        return file_hash(local)


def fidelity(api, repo_id):
    with tempfile.TemporaryDirectory(prefix="wharf-hf-up-") as work:
        return _fidelity(api, repo_id, work)


def _fidelity(api, repo_id, work):
    """create_repo, upload_file (regular and LFS), upload_folder (LFS multipart),
    create_commit (add + delete, stale parent_commit refused), list_repo_files,
    list_repo_tree, hf_hub_download: every byte must come back."""
    assert not _runtime.is_xet_available(), "Xet must be off for the LFS test server"
    out = {}
    url = api.create_repo(repo_id)
    out["repo_url"] = str(url)
    try:
        api.create_repo(repo_id)
        raise AssertionError("creating an existing repo succeeded")
    except HfHubHTTPError as e:
        assert e.response.status_code == 409, e
    api.create_repo(repo_id, exist_ok=True)

    want = {}
    # Regular: small text.
    text = os.path.join(work, "config.json")
    with open(text, "w") as f:
        json.dump({"model_type": "wharf-test", "hidden": 7}, f)
    api.upload_file(path_or_fileobj=text, path_in_repo="config.json", repo_id=repo_id, commit_message="config")
    want["config.json"] = file_hash(text)
    # LFS by .gitattributes (*.bin), basic transfer.
    small, _ = deterministic_file(work, "weights/small.bin", 300_000, 1)
    api.upload_file(path_or_fileobj=small, path_in_repo="weights/small.bin", repo_id=repo_id)
    want["weights/small.bin"] = file_hash(small)
    # LFS by size, multipart transfer (over the server's 32 MiB threshold), with upload_folder.
    folder = os.path.join(work, "folder")
    big, _ = deterministic_file(folder, "shards/model-00001.safetensors", (40 << 20) + 17, 2)
    notes = os.path.join(folder, "notes.txt")
    with open(notes, "w") as f:
        f.write("uploaded by upload_folder\n")
    api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="folder")
    want["shards/model-00001.safetensors"] = file_hash(big)
    want["notes.txt"] = file_hash(notes)

    # create_commit: add and delete at once, on the current head.
    head = api.repo_info(repo_id).sha
    extra = os.path.join(work, "extra.txt")
    with open(extra, "w") as f:
        f.write("extra\n")
    info = api.create_commit(
        repo_id,
        operations=[
            CommitOperationAdd(path_in_repo="extra.txt", path_or_fileobj=extra),
            CommitOperationDelete(path_in_repo="notes.txt"),
        ],
        commit_message="add extra, delete notes",
        parent_commit=head,
    )
    del want["notes.txt"]
    want["extra.txt"] = file_hash(extra)
    out["commit"] = info.oid
    # The same parent again is stale now: 412.
    try:
        api.create_commit(
            repo_id,
            operations=[CommitOperationDelete(path_in_repo="extra.txt")],
            commit_message="stale",
            parent_commit=head,
        )
        raise AssertionError("a commit on a stale parent succeeded")
    except HfHubHTTPError as e:
        assert e.response.status_code == 412, e
        out["stale_parent_status"] = e.response.status_code

    files = sorted(api.list_repo_files(repo_id))
    assert files == sorted(list(want) + [".gitattributes"]), files
    out["files"] = files
    tree = {e.path: e for e in api.list_repo_tree(repo_id, recursive=True)}
    for path in want:
        entry = tree[path]
        size = int(want[path].split()[1])
        assert entry.size == size, (path, entry.size, size)
        is_lfs = path.endswith((".bin", ".safetensors"))
        assert (entry.lfs is not None) == is_lfs, (path, entry.lfs)
        if is_lfs:
            assert entry.lfs.sha256 == want[path].split()[0], path
    assert type(tree["shards"]).__name__ == "RepoFolder", tree["shards"]
    top = sorted(e.path for e in api.list_repo_tree(repo_id))
    assert top == sorted({p.split("/")[0] for p in want} | {".gitattributes"}), top

    # 1,100 small files in one commit; their listing takes two pages (the server's pages hold 1,000).
    many = [
        CommitOperationAdd(path_in_repo=f"many/f{i:04d}.txt", path_or_fileobj=f"file {i}\n".encode())
        for i in range(1100)
    ]
    api.create_commit(repo_id, operations=many, commit_message="many files")
    del _next_pages[:]
    listed = [e.path for e in api.list_repo_tree(repo_id, path_in_repo="many", recursive=True)]
    assert listed == [op.path_in_repo for op in many], listed[:3]
    out["paged_entries"] = len(listed)
    out["pages"] = 1 + len(_next_pages)
    last = b"file 1099\n"
    assert download(repo_id, "many/f1099.txt") == f"{hashlib.sha256(last).hexdigest()} {len(last)}"

    # A wrong token is refused.
    try:
        HfApi(token="hf_wrong_token").list_repo_files(repo_id)
        raise AssertionError("a wrong token was accepted")
    except HfHubHTTPError as e:
        assert e.response.status_code == 401, e

    for path, expected in want.items():
        got = download(repo_id, path)
        assert got == expected, (path, got, expected)
    out["downloaded"] = sorted(want)
    # A revision given as a commit id resolves too.
    with tempfile.TemporaryDirectory() as cache:
        local = hf_hub_download(repo_id, "weights/small.bin", revision=info.oid, cache_dir=cache)
        assert file_hash(local) == want["weights/small.bin"]
    return out


def main():
    api = HfApi()
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "create":
        print(api.create_repo(args[0], repo_type=args[1]))
    elif cmd == "fidelity":
        print(json.dumps(fidelity(api, args[0]), sort_keys=True))
    elif cmd == "put":
        repo_id, path, size, seed = args[0], args[1], int(args[2]), int(args[3])
        repo_type = args[4] if len(args) > 4 else None
        with tempfile.TemporaryDirectory() as work:
            local, _ = deterministic_file(work, "payload", size, seed)
            api.upload_file(
                path_or_fileobj=local,
                path_in_repo=path,
                repo_id=repo_id,
                repo_type=repo_type,
                commit_message=f"put {path}",
            )
            print(file_hash(local))
    elif cmd == "get":
        print(download(args[0], args[1], args[2] if len(args) > 2 else None))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
