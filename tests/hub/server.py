#!/usr/bin/env python3
"""A small Hugging Face Hub-compatible server for wharf's tests.

It implements the endpoints the `huggingface_hub` client and wharf's
`huggingface_hub` adapter use, with the Hub's shapes (paths, headers, JSON
field names, status codes):

  POST /api/repos/create                                create a repo (409 if it exists)
  GET  /api/{type}s/{repo}[/revision/{rev}]             repo info (`sha`, `siblings`)
  GET  /api/{type}s/{repo}/tree/{rev}[/{path}]          listing; `recursive`, `cursor`, `Link: <..>; rel="next"`
  POST /api/{type}s/{repo}/paths-info/{rev}             info on some paths
  POST /api/{type}s/{repo}/preupload/{rev}              `regular` or `lfs` per file
  POST /api/{type}s/{repo}/commit/{rev}                 NDJSON commit; 412 on a stale `parentCommit`
  HEAD|GET /[{type}s/]{repo}/resolve/{rev}/{path}       regular files: 200/206; LFS files: 302 to the CDN
  POST /[{type}s/]{repo}.git/info/lfs/objects/batch     LFS batch: `basic` or `multipart` transfer
  POST /[{type}s/]{repo}.git/info/lfs/objects/verify    LFS verify action
  PUT  /cdn-lfs-upload/{oid}, /cdn-lfs-part/{id}/{n}    signed upload URLs (no token)
  POST /api/complete_multipart                          signed multipart completion (no token)
  HEAD|GET /cdn-lfs/{oid}                               signed download URLs, ranged

Everything but the signed URLs needs `Authorization: Bearer <token>`
(`--token`); anything else is 401. The "CDN" URLs use `--cdn-host` (default
`localhost`) on the same port: a host name other than the API's, the way
huggingface.co redirects LFS files to cdn-lfs.huggingface.co, so a client
stops at the redirect and does not send its token there.

Xet is never advertised: no `X-Xet-*` header, no `xet` transfer. (The
official client 1.x uploads through Xet whenever the `hf_xet` package is
installed, whatever the server says; set HF_HUB_DISABLE_XET=1 for it.)

Storage: blobs live on disk under `--data` (LFS objects by sha256, regular
files by git blob sha1) and are streamed in and out in 1 MiB pieces. Repos
are in memory: per repo, branches -> head commit, commits with their
changes and the reverse changes, and the head tree of each branch.
"""

import argparse
import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 1 << 20
# The Hub stores files of 10 MB and more through LFS.
REGULAR_MAX = 10 * 1000 * 1000
# The most a JSON or NDJSON request body may carry.
BODY_MAX = 256 << 20
SIGNED_URL_SECONDS = 3600
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")

# The `.gitattributes` the Hub puts in every new repo.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in [
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
        "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
        "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
    ]
)


class HubError(Exception):
    """An error answer: status, message, and the Hub's `X-Error-Code`."""

    def __init__(self, status, message, code=None, headers=None, extra=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


def git_blob_sha(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid, size):
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


class Entry:
    """One file of a tree."""

    __slots__ = ("kind", "oid", "size", "sha256", "blob")

    def __init__(self, kind, oid, size, sha256, blob):
        self.kind = kind  # "regular" or "lfs"
        self.oid = oid  # git blob sha1 (of the pointer file for LFS)
        self.size = size
        self.sha256 = sha256  # LFS only
        self.blob = blob  # file on disk

    def etag(self):
        return self.sha256 if self.kind == "lfs" else self.oid

    def tree_json(self, path):
        out = {"type": "file", "oid": self.oid, "size": self.size, "path": path}
        if self.kind == "lfs":
            out["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return out


class Commit:
    __slots__ = ("id", "parent", "changes", "undo", "summary", "date")

    def __init__(self, cid, parent, changes, undo, summary):
        self.id = cid
        self.parent = parent
        self.changes = changes  # path -> Entry | None (deleted)
        self.undo = undo  # path -> Entry | None: the tree before this commit
        self.summary = summary
        self.date = time.time()


class Repo:
    def __init__(self, repo_type, repo_id, private):
        self.type = repo_type
        self.id = repo_id
        self.private = private
        self.lock = threading.Lock()
        self.commits = {}
        self.branches = {}  # name -> commit id
        self.heads = {}  # commit id -> tree (path -> Entry), for branch heads only
        self.sorted_cache = {}  # commit id -> sorted listing
        # LFS objects uploaded to this repo: blobs on disk are shared, but
        # like the Hub a repo may only use the objects uploaded to it.
        self.lfs = set()


class Store:
    def __init__(self, data, page_size, multipart_threshold, chunk_size):
        self.data = data
        self.page_size = page_size
        self.multipart_threshold = multipart_threshold
        self.chunk_size = chunk_size
        self.repos = {}
        self.lock = threading.Lock()
        self.uploads = {}  # multipart upload id -> {"oid", "size", "parts"}
        self.counter = 0
        for d in ("lfs", "git", "tmp", "parts"):
            os.makedirs(os.path.join(data, d), exist_ok=True)

    # ---- blobs -------------------------------------------------------
    def tmp_path(self):
        return os.path.join(self.data, "tmp", secrets.token_hex(12))

    def lfs_path(self, oid):
        return os.path.join(self.data, "lfs", oid)

    def put_regular(self, content):
        sha = git_blob_sha(content)
        path = os.path.join(self.data, "git", sha)
        if not os.path.exists(path):
            tmp = self.tmp_path()
            with open(tmp, "wb") as f:
                f.write(content)
            os.replace(tmp, path)
        return Entry("regular", sha, len(content), None, path)

    def lfs_entry(self, repo, oid, size):
        path = self.lfs_path(oid)
        if oid not in repo.lfs or not os.path.exists(path):
            return None
        actual = os.path.getsize(path)
        if size is not None and size != actual:
            return None
        return Entry("lfs", git_blob_sha(lfs_pointer(oid, actual)), actual, oid, path)

    # ---- repos -------------------------------------------------------
    def new_commit_id(self, parent, summary):
        with self.lock:
            self.counter += 1
            n = self.counter
        seed = f"{parent}\n{time.time_ns()}\n{n}\n{summary}\n{secrets.token_hex(8)}"
        return hashlib.sha1(seed.encode()).hexdigest()

    def create_repo(self, repo_type, repo_id, private):
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return None
            repo = Repo(repo_type, repo_id, private)
            self.repos[(repo_type, repo_id)] = repo
        entry = self.put_regular(DEFAULT_GITATTRIBUTES.encode())
        cid = self.new_commit_id(None, "initial commit")
        tree = {".gitattributes": entry}
        repo.commits[cid] = Commit(cid, None, dict(tree), {".gitattributes": None}, "initial commit")
        repo.branches["main"] = cid
        repo.heads[cid] = tree
        return repo

    def repo(self, repo_type, repo_id):
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def resolve(self, repo, rev):
        """(commit id, tree) of a branch or commit id."""
        cid = repo.branches.get(rev)
        if cid is None and COMMIT_ID.match(rev) and rev in repo.commits:
            cid = rev
        if cid is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        tree = repo.heads.get(cid)
        if tree is not None:
            return cid, tree
        with repo.lock:  # no commit moves the heads meanwhile
            return cid, self.rebuild(repo, cid)

    def rebuild(self, repo, cid):
        """The tree of an older commit: a head's tree with the undo records applied."""
        for head in list(repo.branches.values()):
            tree = repo.heads.get(head)
            if tree is None:
                continue
            walk, undos = head, []
            while walk is not None and walk != cid:
                undos.append(repo.commits[walk].undo)
                walk = repo.commits[walk].parent
            if walk == cid:
                tree = dict(tree)
                for undo in undos:
                    for path, entry in undo.items():
                        if entry is None:
                            tree.pop(path, None)
                        else:
                            tree[path] = entry
                return tree
        raise HubError(404, f"Invalid rev id: {cid}", "RevisionNotFound")

    def listing(self, repo, cid, tree):
        """Every file and directory, in path order (git's recursive tree order)."""
        cached = repo.sorted_cache.get(cid)
        if cached is not None:
            return cached
        dirs = set()
        for path in tree:
            parts = path.split("/")
            for i in range(1, len(parts)):
                dirs.add("/".join(parts[:i]))
        items = [(p, None) for p in dirs] + [(p, e) for p, e in tree.items()]
        items.sort(key=lambda item: item[0].encode())
        if len(repo.sorted_cache) > 4:
            repo.sorted_cache.clear()
        repo.sorted_cache[cid] = items
        return items

    def commit(self, repo, rev, header, ops):
        summary = header.get("summary") or ""
        if not summary:
            raise HubError(400, "Commit summary is required")
        with repo.lock:
            head = repo.branches.get(rev)
            if head is None:
                if COMMIT_ID.match(rev) and rev in repo.commits:
                    raise HubError(400, f"Cannot commit to a commit: {rev} is not a branch")
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(repo.heads[head])
            changes, undo = {}, {}

            def change(path, entry):
                if path not in undo:
                    undo[path] = tree.get(path)
                changes[path] = entry
                if entry is None:
                    tree.pop(path, None)
                else:
                    tree[path] = entry

            for key, value in ops:
                path = value.get("path", "")
                if not valid_repo_path(path):
                    raise HubError(400, f"Invalid path in commit: {path!r}")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
                    try:
                        content = base64.b64decode(value.get("content", ""), validate=True)
                    except ValueError:
                        raise HubError(400, f"Invalid base64 content for {path}") from None
                    change(path, self.put_regular(content))
                elif key == "lfsFile":
                    if value.get("algo", "sha256") != "sha256":
                        raise HubError(400, f"Unsupported LFS algo for {path}")
                    oid = value.get("oid", "")
                    entry = self.lfs_entry(repo, oid, value.get("size"))
                    if entry is None:
                        raise HubError(
                            422, f"Your push was rejected because an LFS pointer pointed to a file that does not exist: {path} ({oid})"
                        )
                    change(path, entry)
                elif key == "deletedFile":
                    if path not in tree:
                        raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
                    change(path, None)
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in tree if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
                    for p in doomed:
                        change(p, None)
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            cid = self.new_commit_id(head, summary)
            repo.commits[cid] = Commit(cid, head, changes, undo, summary)
            repo.heads[cid] = tree
            repo.branches[rev] = cid
            # Older heads keep no tree: they are rebuilt from undo records.
            if head not in repo.branches.values():
                repo.heads.pop(head, None)
            return cid

    def upload_mode(self, tree, path, size, sample):
        if size >= REGULAR_MAX:
            return "lfs"
        if b"\0" in sample:
            return "lfs"
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as e:
            # A sample cut inside a character is still text.
            if e.start < len(sample) - 3:
                return "lfs"
        attributes = tree.get(".gitattributes")
        if attributes is not None:
            with open(attributes.blob, "rb") as f:
                text = f.read(1 << 20).decode("utf-8", "replace")
            name = path.rsplit("/", 1)[-1]
            for line in text.splitlines():
                fields = line.split()
                if len(fields) < 2 or "filter=lfs" not in fields[1:]:
                    continue
                pattern = fields[0]
                target = path if "/" in pattern else name
                if fnmatch.fnmatchcase(target, pattern):
                    return "lfs"
        return "regular"


def valid_repo_path(path):
    if not path or path.startswith("/") or path.endswith("/") or "\0" in path:
        return False
    return all(seg not in ("", ".", "..") for seg in path.split("/"))


def parse_range(header, size):
    """(start, end inclusive) of a `Range: bytes=` header; None to send it all; "bad" if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    spec = header[len("bytes="):].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n == 0:
                return "bad"
            return (max(0, size - n), size - 1) if size > 0 else "bad"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY each
    # small answer waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server_version = "wharf-test-hub/1"
    store: Store
    token: str
    secret: bytes
    cdn_host: str

    # ---- plumbing ------------------------------------------------------
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def body_reader(self):
        """A generator of the request body's pieces (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left > 0:
                    piece = self.rfile.read(min(CHUNK, left))
                    if not piece:
                        raise ConnectionError("the chunked body ended early")
                    left -= len(piece)
                    yield piece
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                piece = self.rfile.read(min(CHUNK, left))
                if not piece:
                    raise ConnectionError("the body ended early")
                left -= len(piece)
                yield piece

    def read_body(self, limit=BODY_MAX):
        parts, total = [], 0
        for piece in self.body_reader():
            total += len(piece)
            if total > limit:
                raise HubError(413, f"Request body larger than {limit} bytes")
            parts.append(piece)
        self._body_read = True
        return b"".join(parts)

    def read_json(self):
        try:
            return json.loads(self.read_body() or b"{}")
        except json.JSONDecodeError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from None

    def drain(self):
        """Consumes an unread request body so the connection can carry the next request."""
        if getattr(self, "_body_read", False):
            return
        self._body_read = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if self.headers.get("Transfer-Encoding") or length > (64 << 20):
            self.close_connection = True
            return
        for _ in self.body_reader():
            pass

    def send(self, status, body=b"", content_type="application/json; charset=utf-8", headers=None, head=False):
        self.drain()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, value, headers=None, content_type="application/json; charset=utf-8"):
        self.send(status, json.dumps(value).encode(), content_type, headers)

    def send_error_json(self, err):
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message.encode("ascii", "replace").decode()
        self.send_json(err.status, {"error": err.message, **err.extra}, headers)

    def hub_url(self):
        return f"http://{self.headers.get('Host') or '127.0.0.1:%d' % self.server.server_address[1]}"

    def cdn_url(self):
        return f"http://{self.cdn_host}:{self.server.server_address[1]}"

    def check_auth(self):
        got = self.headers.get("Authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            raise HubError(401, "Invalid credentials in Authorization header")

    def sign(self, path, extra=""):
        expires = int(time.time()) + SIGNED_URL_SECONDS
        sig = hmac.new(self.secret, f"{path}|{extra}|{expires}".encode(), hashlib.sha256).hexdigest()
        return f"Expires={expires}&Signature={sig}"

    def check_signature(self, path, query, extra=""):
        expires = query.get("Expires", ["0"])[0]
        sig = query.get("Signature", [""])[0]
        want = hmac.new(self.secret, f"{path}|{extra}|{expires}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig.encode(), want.encode()):
            raise HubError(403, "Signature does not match")
        if int(expires) < time.time():
            raise HubError(403, "Request has expired")

    # ---- dispatch ----------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        self._body_read = False
        split = urlsplit(self.path)
        raw = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            segs = [unquote(s, errors="strict") for s in raw.split("/")[1:]]
        except UnicodeDecodeError:
            segs = None
        try:
            if segs is None:
                raise HubError(400, "Path is not UTF-8")
            self.route(raw, segs, query)
        except HubError as err:
            self.send_error_json(err)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as e:  # a bug here: say so, keep serving
            self.log_message("internal error on %s %s: %r", self.command, raw, e)
            self.close_connection = True
            try:
                self.send_error_json(HubError(500, f"Internal error: {e}"))
            except OSError:
                pass

    def route(self, raw, segs, query):
        m = self.command
        # Signed URLs (the "CDN"): no token.
        if segs[0] == "cdn-lfs" and len(segs) == 2 and m in ("GET", "HEAD"):
            return self.cdn_download(raw, segs[1], query)
        if segs[0] == "cdn-lfs-upload" and len(segs) == 2 and m == "PUT":
            return self.cdn_upload(raw, segs[1], query)
        if segs[0] == "cdn-lfs-part" and len(segs) == 3 and m == "PUT":
            return self.cdn_part(raw, segs[1], segs[2], query)
        if segs[:2] == ["api", "complete_multipart"] and m == "POST":
            return self.complete_multipart(raw, query)

        self.check_auth()
        if segs[0] == "api":
            if segs[1:3] == ["repos", "create"] and m == "POST":
                return self.create_repo()
            if segs[1:2] == ["whoami-v2"] and m == "GET":
                return self.send_json(200, {"type": "user", "name": "wharf", "auth": {"type": "access_token"}})
            if len(segs) >= 4 and segs[1] in REPO_TYPES:
                repo = self.store.repo(REPO_TYPES[segs[1]], f"{segs[2]}/{segs[3]}")
                rest = segs[4:]
                if not rest and m == "GET":
                    return self.repo_info(repo, "main")
                if len(rest) == 2 and rest[0] == "revision" and m == "GET":
                    return self.repo_info(repo, rest[1])
                if len(rest) >= 2 and rest[0] == "tree" and m == "GET":
                    return self.tree(repo, rest[1], "/".join(rest[2:]), raw, query)
                if len(rest) == 2 and rest[0] == "paths-info" and m == "POST":
                    return self.paths_info(repo, rest[1])
                if len(rest) == 2 and rest[0] == "preupload" and m == "POST":
                    return self.preupload(repo, rest[1])
                if len(rest) == 2 and rest[0] == "commit" and m == "POST":
                    return self.commit(repo, rest[1])
        else:
            repo_type = "model"
            if segs[0] in ("datasets", "spaces") and len(segs) > 1:
                repo_type = REPO_TYPES[segs[0]]
                segs = segs[1:]
            if len(segs) >= 5 and segs[2] == "resolve" and m in ("GET", "HEAD"):
                repo = self.store.repo(repo_type, f"{segs[0]}/{segs[1]}")
                return self.resolve(repo, segs[3], "/".join(segs[4:]))
            if len(segs) == 6 and segs[1].endswith(".git") and segs[2:5] == ["info", "lfs", "objects"] and m == "POST":
                repo = self.store.repo(repo_type, f"{segs[0]}/{segs[1][:-4]}")
                if segs[5] == "batch":
                    return self.lfs_batch(repo)
                if segs[5] == "verify":
                    return self.lfs_verify(repo)
        self.log_message("no such endpoint: %s %s", m, raw)
        raise HubError(404, f"Sorry, we can't find the page you are looking for ({m} {raw})")

    # ---- repos -------------------------------------------------------------
    def create_repo(self):
        body = self.read_json()
        name = body.get("name")
        org = body.get("organization") or "wharf"
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX or not name or "/" in name:
            raise HubError(400, "Invalid repo name or type")
        repo_id = f"{org}/{name}"
        private = body.get("private") or body.get("visibility") == "private"
        url = f"{self.hub_url()}/{URL_PREFIX[repo_type]}{repo_id}"
        if self.store.create_repo(repo_type, repo_id, bool(private)) is None:
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        self.send_json(200, {"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def repo_info(self, repo, rev):
        cid, tree = self.store.resolve(repo, rev)
        commit = repo.commits[cid]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date))
        info = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.id.split("/")[0],
            "sha": cid,
            "lastModified": stamp,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": [{"rfilename": p} for p in sorted(tree)],
            "createdAt": stamp,
        }
        if repo.type == "model":
            info["modelId"] = repo.id
        self.send_json(200, info)

    def tree(self, repo, rev, path, raw, query):
        cid, tree = self.store.resolve(repo, rev)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        items = self.store.listing(repo, cid, tree)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p, _ in items):
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": cid})
        after = None
        if "cursor" in query:
            try:
                after = base64.urlsafe_b64decode(query["cursor"][0].encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise HubError(400, "Invalid cursor") from None
        page, more = [], False
        for p, entry in items:
            if not p.startswith(prefix):
                continue
            if not recursive and "/" in p[len(prefix):]:
                continue
            if after is not None and p.encode() <= after.encode():
                continue
            if len(page) == self.store.page_size:
                more = True
                break
            if entry is None:
                dir_oid = hashlib.sha1(f"tree {cid} {p}".encode()).hexdigest()
                page.append({"type": "directory", "oid": dir_oid, "size": 0, "path": p})
            else:
                page.append(entry.tree_json(p))
        headers = {"X-Repo-Commit": cid}
        if more:
            cursor = base64.urlsafe_b64encode(page[-1]["path"].encode()).decode()
            params = f"recursive={'true' if recursive else 'false'}&expand=false&cursor={cursor}"
            headers["Link"] = f'<{self.hub_url()}{raw}?{params}>; rel="next"'
        self.send_json(200, page, headers)

    def paths_info(self, repo, rev):
        cid, tree = self.store.resolve(repo, rev)
        ctype = self.headers.get("Content-Type", "")
        body = self.read_body()
        if ctype.startswith("application/json"):
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for p in paths:
            entry = tree.get(p)
            if entry is not None:
                out.append(entry.tree_json(p))
            elif any(q.startswith(p.rstrip("/") + "/") for q in tree):
                out.append({"type": "directory", "oid": hashlib.sha1(f"tree {cid} {p}".encode()).hexdigest(), "size": 0, "path": p})
        self.send_json(200, out)

    def preupload(self, repo, rev):
        cid, tree = self.store.resolve(repo, rev)
        body = self.read_json()
        files = body.get("files")
        if not isinstance(files, list):
            raise HubError(400, "`files` must be a list")
        out = []
        for f in files:
            path, size = f.get("path"), f.get("size")
            if not isinstance(path, str) or not isinstance(size, int) or not valid_repo_path(path):
                raise HubError(400, "each file needs a valid `path` and an integer `size`")
            try:
                sample = base64.b64decode(f.get("sample", ""))
            except ValueError:
                raise HubError(400, f"Invalid sample for {path}") from None
            existing = tree.get(path)
            out.append({
                "path": path,
                "uploadMode": self.store.upload_mode(tree, path, size, sample[:512]),
                "shouldIgnore": False,
                "oid": existing.oid if existing else None,
            })
        self.send_json(200, {"files": out, "commitOid": cid})

    def commit(self, repo, rev):
        body = self.read_body()
        header, ops = None, []
        for n, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise HubError(400, f"Invalid NDJSON line {n + 1}") from None
            if key == "header":
                header = value
            else:
                ops.append((key, value))
        if header is None:
            raise HubError(400, "The commit has no header line")
        cid = self.store.commit(repo, rev, header, ops)
        url = f"{self.hub_url()}/{URL_PREFIX[repo.type]}{repo.id}/commit/{cid}"
        self.send_json(200, {"success": True, "commitOid": cid, "commitUrl": url, "hookOutput": "", "pullRequestUrl": None})

    # ---- downloads -------------------------------------------------------
    def resolve(self, repo, rev, path):
        cid, tree = self.store.resolve(repo, rev)
        entry = tree.get(path)
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": cid})
        if entry.kind == "lfs":
            target = f"/cdn-lfs/{entry.sha256}"
            location = f"{self.cdn_url()}{target}?{self.sign(target)}"
            body = f"Found. Redirecting to {location}".encode()
            return self.send(
                302,
                body,
                "text/plain; charset=utf-8",
                {
                    "Location": location,
                    "X-Repo-Commit": cid,
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": entry.size,
                    "ETag": f'"{entry.sha256}"',
                },
            )
        self.send_file(entry.blob, entry.size, f'"{entry.oid}"', {"X-Repo-Commit": cid})

    def cdn_download(self, raw, oid, query):
        self.check_signature(raw, query)
        path = self.store.lfs_path(oid)
        if not os.path.exists(path):
            raise HubError(404, "NoSuchKey")
        self.send_file(path, os.path.getsize(path), f'"{oid}"', {})

    def send_file(self, path, size, etag, headers):
        headers = dict(headers)
        headers["ETag"] = etag
        headers["Accept-Ranges"] = "bytes"
        rng = parse_range(self.headers.get("Range"), size)
        if rng == "bad":
            headers["Content-Range"] = f"bytes */{size}"
            return self.send(416, b"", None, headers)
        status, start, length = 200, 0, size
        if rng is not None:
            status, start, length = 206, rng[0], rng[1] - rng[0] + 1
            headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        self.drain()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                piece = f.read(min(CHUNK, left))
                if not piece:
                    raise ConnectionError("blob shorter than recorded")
                self.wfile.write(piece)
                left -= len(piece)

    # ---- LFS -------------------------------------------------------------
    def lfs_batch(self, repo):
        body = self.read_json()
        if body.get("operation") != "upload":
            raise HubError(400, "Only the upload operation is supported")
        transfers = body.get("transfers") or ["basic"]
        objects_out = []
        chosen = "basic"
        for obj in body.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                objects_out.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                                    "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            item = {"oid": oid, "size": size, "authenticated": True}
            if self.store.lfs_entry(repo, oid, size) is None:
                # The client sends its token with the verify request.
                verify = {"href": f"{self.hub_url()}/{URL_PREFIX[repo.type]}{repo.id}.git/info/lfs/objects/verify"}
                if "multipart" in transfers and size > self.store.multipart_threshold:
                    chosen = "multipart"
                    upload_id = secrets.token_hex(16)
                    chunk = self.store.chunk_size
                    parts = max(1, -(-size // chunk))
                    with self.store.lock:
                        self.store.uploads[upload_id] = {"oid": oid, "size": size, "parts": parts, "repo": repo}
                    header = {"chunk_size": str(chunk)}
                    for n in range(1, parts + 1):
                        p = f"/cdn-lfs-part/{upload_id}/{n}"
                        header[str(n)] = f"{self.cdn_url()}{p}?{self.sign(p)}"
                    done = "/api/complete_multipart"
                    href = f"{self.hub_url()}{done}?uploadId={upload_id}&{self.sign(done, upload_id)}"
                    item["actions"] = {"upload": {"href": href, "header": header}, "verify": verify}
                else:
                    p = f"/cdn-lfs-upload/{oid}"
                    scope = f"{size}|{repo.type}|{repo.id}"
                    query = f"size={size}&repo={repo.type}:{quote(repo.id, safe='')}&{self.sign(p, scope)}"
                    item["actions"] = {
                        "upload": {"href": f"{self.cdn_url()}{p}?{query}", "header": {}},
                        "verify": verify,
                    }
            objects_out.append(item)
        self.send_json(200, {"transfer": chosen, "objects": objects_out, "hash_algo": "sha256"},
                       content_type="application/vnd.git-lfs+json")

    def lfs_verify(self, repo):
        body = self.read_json()
        if self.store.lfs_entry(repo, body.get("oid", ""), body.get("size")) is None:
            raise HubError(404, "Object not found or size mismatch")
        self.send_json(200, {"success": True}, content_type="application/vnd.git-lfs+json")

    def receive_to(self, tmp, want_sha256=True):
        """Streams the request body into `tmp`; (sha256 hex or None, size, md5 hex)."""
        sha = hashlib.sha256() if want_sha256 else None
        md5, size = hashlib.md5(), 0
        try:
            with open(tmp, "wb") as f:
                for piece in self.body_reader():
                    if sha is not None:
                        sha.update(piece)
                    md5.update(piece)
                    f.write(piece)
                    size += len(piece)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        self._body_read = True
        return (sha.hexdigest() if sha else None), size, md5.hexdigest()

    def cdn_upload(self, raw, oid, query):
        size = query.get("size", [""])[0]
        repo_type, _, repo_id = query.get("repo", [""])[0].partition(":")
        self.check_signature(raw, query, f"{size}|{repo_type}|{repo_id}")
        repo = self.store.repo(repo_type, repo_id)
        tmp = self.store.tmp_path()
        got, got_size, md5 = self.receive_to(tmp)
        if got != oid or str(got_size) != size:
            os.remove(tmp)
            raise HubError(400, f"Content does not match: sha256 {got}, {got_size} bytes; expected {oid}, {size} bytes")
        os.replace(tmp, self.store.lfs_path(oid))
        repo.lfs.add(oid)
        self.send(200, b"", None, {"ETag": f'"{md5}"'})

    def cdn_part(self, raw, upload_id, n, query):
        self.check_signature(raw, query)
        upload = self.store.uploads.get(upload_id)
        if upload is None or not n.isdigit() or not 1 <= int(n) <= upload["parts"]:
            raise HubError(404, "NoSuchUpload")
        tmp = self.store.tmp_path()
        # The whole object's sha256 is checked when the parts are assembled.
        _, _, md5 = self.receive_to(tmp, want_sha256=False)
        part_dir = os.path.join(self.store.data, "parts", upload_id)
        os.makedirs(part_dir, exist_ok=True)
        os.replace(tmp, os.path.join(part_dir, n))
        with open(os.path.join(part_dir, n + ".etag"), "w") as f:
            f.write(md5)
        self.send(200, b"", None, {"ETag": f'"{md5}"'})

    def complete_multipart(self, raw, query):
        upload_id = query.get("uploadId", [""])[0]
        self.check_signature(raw, query, upload_id)
        upload = self.store.uploads.get(upload_id)
        if upload is None:
            raise HubError(404, "NoSuchUpload")
        body = self.read_json()
        parts = body.get("parts") or []
        if body.get("oid") != upload["oid"] or [p.get("partNumber") for p in parts] != list(range(1, upload["parts"] + 1)):
            raise HubError(400, "The completion does not list every part in order for this oid")
        part_dir = os.path.join(self.store.data, "parts", upload_id)
        for p in parts:
            etag_file = os.path.join(part_dir, f"{p['partNumber']}.etag")
            if not os.path.exists(etag_file):
                raise HubError(400, f"Part {p['partNumber']} was not uploaded")
            with open(etag_file) as f:
                if f.read().strip() != str(p.get("etag", "")).strip('"'):
                    raise HubError(400, f"Part {p['partNumber']} has another etag")
        tmp = self.store.tmp_path()
        sha, size = hashlib.sha256(), 0
        with open(tmp, "wb") as out:
            for n in range(1, upload["parts"] + 1):
                with open(os.path.join(part_dir, str(n)), "rb") as f:
                    while piece := f.read(CHUNK):
                        sha.update(piece)
                        out.write(piece)
                        size += len(piece)
        for name in os.listdir(part_dir):
            os.remove(os.path.join(part_dir, name))
        os.rmdir(part_dir)
        with self.store.lock:
            self.store.uploads.pop(upload_id, None)
        if sha.hexdigest() != upload["oid"] or size != upload["size"]:
            os.remove(tmp)
            raise HubError(400, f"Assembled object is sha256 {sha.hexdigest()}, {size} bytes; expected {upload['oid']}, {upload['size']}")
        os.replace(tmp, self.store.lfs_path(upload["oid"]))
        upload["repo"].lfs.add(upload["oid"])
        self.send_json(200, {"success": True})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True, help="the only token accepted (Bearer)")
    ap.add_argument("--data", required=True, help="directory for blobs")
    ap.add_argument("--cdn-host", default="localhost", help="host name of the signed LFS URLs (same port)")
    ap.add_argument("--tree-page-size", type=int, default=1000)
    ap.add_argument("--multipart-threshold", type=int, default=32 << 20, help="LFS objects larger than this use multipart")
    ap.add_argument("--chunk-size", type=int, default=16 << 20, help="multipart part size")
    args = ap.parse_args()

    Handler.store = Store(args.data, args.tree_page_size, args.multipart_threshold, args.chunk_size)
    Handler.token = args.token
    Handler.secret = secrets.token_bytes(32)
    Handler.cdn_host = args.cdn_host
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"hub: listening on http://{args.host}:{args.port} (cdn host {args.cdn_host})\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
