// js_dir: a wharf storage adapter in JavaScript over a directory the host grants.
//
// The same semantics as the Rust `local_filesystem` adapter, written against
// the WASI 0.2 filesystem interfaces directly (a component built with
// componentize-js has no Node `fs`). `root` (default `/data`) names the
// granted directory objects live under; the object `a/b.onnx` is the file
// `<root>/a/b.onnx`.
//
// Writes go to `<root>/.wharf-tmp/` first and become visible by a rename
// (overwrite, update) or a hard link (create, which fails atomically if the
// destination exists), so a reader never sees a half-written object. Paths
// whose first segment starts with `.wharf` are reserved.
//
// The etag is `<size>-<mtime ns>` (hex) of the file: every write makes a new
// file and stamps its modification time from the wall clock in nanoseconds,
// so any content change changes it.
// `update(etag)` compares and renames holding the object's lock file in
// `.wharf-tmp/` (created only where none exists), so of updates racing with
// one etag exactly one wins; a lock a killed instance left is taken over
// after 30 s.
//
// The host makes a fresh instance for every operation: nothing here outlives
// one call of `open` and the calls on what it returns.

import { subscribeDuration } from 'wasi:clocks/monotonic-clock@0.2.12';
import { now as wallClockNow } from 'wasi:clocks/wall-clock@0.2.12';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

const TMP_DIR = '.wharf-tmp';
/** Temporary files older than this are left-overs of a killed write. */
const STALE_TMP_MS = 24 * 3600 * 1000;
/** The most `next` returns at once, whatever the host asks for. */
const MAX_NEXT = 16 << 20;
/** Chunk size of `copy`. */
const COPY_CHUNK = 4 << 20;
const LIST_MAX_LIMIT = 1000;
/** Age at which an update's lock is taken to be a killed instance's. */
const STALE_LOCK_MS = 30 * 1000;
/** How long an update waits for the lock: past STALE_LOCK_MS, so a stale
 * lock is always taken over within one call. */
const LOCK_WAIT_MS = 40 * 1000;
/** The longest pause between two tries of the lock. */
const LOCK_MAX_PAUSE_MS = 50;

const dispose = Symbol.dispose || Symbol.for('dispose');
const FOLLOW = { symlinkFollow: true };
const NO_FOLLOW = {};

// ---------------------------------------------------------------------------
// Errors. A contract error is the `error` variant as a plain object, thrown:
// `{ tag: 'not-found', val: 'message' }`. The bindings turn a thrown value
// into the `err` case of the function's `result`. A thrown `Error` (a bug)
// is not a contract error: it traps, and the host reports a broken adapter.

function wharfError(tag, message) {
  return { tag, val: message };
}

/** The WASI `error-code` of a failed import call, or undefined. */
function fsCode(e) {
  return e !== null && typeof e === 'object' && typeof e.payload === 'string' ? e.payload : undefined;
}

function isWharfError(e) {
  return e !== null && typeof e === 'object' && !(e instanceof Error) && typeof e.tag === 'string';
}

/** Maps a failed WASI call to the contract's error, like io_error in Rust. */
function ioError(op, path, e) {
  if (isWharfError(e)) return e;
  const code = fsCode(e);
  if (code === undefined) return e; // not an I/O error: rethrown as it is
  const msg = `${op} \`${path}\`: ${code}`;
  switch (code) {
    case 'no-entry':
      return wharfError('not-found', msg);
    case 'exist':
      return wharfError('already-exists', msg);
    case 'access':
    case 'not-permitted':
    case 'read-only':
      return wharfError('denied', msg);
    case 'name-too-long':
      return wharfError('invalid', msg);
    case 'interrupted':
    case 'would-block':
      // Nothing was committed and trying again may work.
      return wharfError('transient', msg);
    default:
      return wharfError('backend', msg);
  }
}

/** Runs `f`, turning a WASI failure into the contract's error. */
function fs(op, path, f) {
  try {
    return f();
  } catch (e) {
    throw ioError(op, path, e);
  }
}

// ---------------------------------------------------------------------------
// Paths.

const encoder = new TextEncoder();

/** Unicode `Cc`: what Rust's `char::is_control` rejects. */
function hasControl(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

function checkPath(path) {
  const segments = path.split('/');
  const bad =
    path.length === 0 ||
    encoder.encode(path).length > 1024 ||
    hasControl(path) ||
    segments.some((s) => s === '' || s === '.' || s === '..') ||
    segments[0].startsWith('.wharf');
  if (bad) throw wharfError('invalid', `invalid object path \`${path}\``);
}

/**
 * Compares two strings in the byte order of their UTF-8 encodings, which is
 * the order of their code points. (`<` on JS strings compares UTF-16 code
 * units, which differs for characters above U+FFFF.)
 */
function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++; // both are the same surrogate pair
  }
  return a.length - b.length;
}

function parentOf(path) {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

// ---------------------------------------------------------------------------
// Metadata.

function metaOf(path, st) {
  const ts = st.dataModificationTimestamp;
  const ns = ts ? ts.seconds * 1000000000n + BigInt(ts.nanoseconds) : 0n;
  return {
    path,
    size: st.size,
    etag: `${st.size.toString(16)}-${ns.toString(16)}`,
    modifiedMs: ts ? ns / 1000000n : undefined,
  };
}

function randomName() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The name of the lock file of `path`'s updates in TMP_DIR: the path with
 * `%` and `/` escaped, or for a path too long for one file name its FNV-1a
 * hash (two such paths may then share a lock, which only makes one wait).
 * Temporaries are hex names without a dot, so none ends in `.lock`.
 */
function lockName(path) {
  const name = path.replaceAll('%', '%25').replaceAll('/', '%2F');
  if (encoder.encode(name).length <= 200) return `${name}.lock`;
  let h = 0xcbf29ce484222325n;
  for (const b of encoder.encode(path)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return `long-${h.toString(16).padStart(16, '0')}.lock`;
}

/** Blocks for `ms` milliseconds (a WASI monotonic-clock pollable). */
function sleepMs(ms) {
  const p = subscribeDuration(BigInt(ms) * 1000000n);
  try {
    p.block();
  } finally {
    close(p);
  }
}

function close(resource) {
  if (resource && resource[dispose]) resource[dispose]();
}

/**
 * Frees the memory of a byte array nothing uses any more, now rather than
 * at the next garbage collection. The engine and its heap live inside the
 * component's linear memory, which never shrinks: without this, 8 MiB chunks
 * pile up until a collection runs and the instance grows towards its memory
 * limit. `transfer(0)` detaches the buffer and drops its contents.
 */
function release(bytes) {
  const buf = bytes.buffer;
  if (typeof buf.transfer === 'function' && bytes.byteOffset === 0 && bytes.byteLength === buf.byteLength) {
    buf.transfer(0);
  }
}

/** Writes all of `bytes` at `offset`; returns the offset after them. */
function writeAll(file, bytes, offset, path) {
  let done = 0;
  while (done < bytes.length) {
    const n = fs('write', path, () => file.write(bytes.subarray(done), offset + BigInt(done)));
    if (n === 0n) throw wharfError('backend', `write \`${path}\`: the file accepted no bytes`);
    done += Number(n);
  }
  return offset + BigInt(done);
}

/** The preopened directory that holds `root`, opened at `root`. */
function openRoot(root) {
  if (!root.startsWith('/')) {
    throw wharfError('invalid', `root \`${root}\` must be an absolute guest path`);
  }
  const want = root.length > 1 ? root.replace(/\/+$/, '') : root;
  let best;
  let bestLen = -1;
  const preopens = getDirectories();
  for (const [dir, guest] of preopens) {
    const base = guest.length > 1 ? guest.replace(/\/+$/, '') : guest;
    const holds = want === base || base === '/' || want.startsWith(`${base}/`);
    if (holds && base.length > bestLen) {
      best = [dir, base];
      bestLen = base.length;
    }
  }
  for (const [dir] of preopens) if (!best || dir !== best[0]) close(dir);
  if (!best) {
    throw wharfError(
      'invalid',
      `root \`${root}\` is not accessible (no granted directory holds it); is it granted to this backend?`,
    );
  }
  const [pre, base] = best;
  const rest = want.slice(base.length).replace(/^\/+/, '');
  let dir = pre;
  if (rest !== '') {
    try {
      dir = pre.openAt(FOLLOW, rest, { directory: true }, { read: true, mutateDirectory: true });
    } catch (e) {
      throw wharfError(
        'invalid',
        `root \`${root}\` is not accessible (${fsCode(e) ?? e}); is it granted to this backend?`,
      );
    } finally {
      close(pre);
    }
  }
  const type = fs('open', root, () => dir.getType());
  if (type !== 'directory') throw wharfError('invalid', `root \`${root}\` is not a directory`);
  return dir;
}

// ---------------------------------------------------------------------------
// The backend.

class Backend {
  constructor(root, dir) {
    this.root = root;
    this.dir = dir;
  }

  capabilities() {
    return {
      readRange: true,
      writeCreate: true,
      writeUpdate: true,
      copy: true,
      listMaxLimit: LIST_MAX_LIMIT,
      writeMinChunk: 0n,
      writeMaxChunk: BigInt(16 << 20),
      maxObjectSize: undefined,
    };
  }

  stat(path) {
    checkPath(path);
    let st;
    try {
      st = this.dir.statAt(FOLLOW, path);
    } catch (e) {
      // A file where a directory of the path should be: no such object.
      if (fsCode(e) === 'not-directory') throw wharfError('not-found', 'a file is where a folder of the path would be');
      throw ioError('stat', path, e);
    }
    if (st.type !== 'regular-file') {
      throw wharfError('not-found', `not an object (a ${st.type})`);
    }
    return metaOf(path, st);
  }

  exists(path) {
    try {
      this.stat(path);
      return true;
    } catch (e) {
      if (isWharfError(e) && e.tag === 'not-found') return false;
      throw e;
    }
  }

  delete(path) {
    checkPath(path);
    try {
      this.dir.unlinkFileAt(path);
    } catch (e) {
      const code = fsCode(e);
      if (code === 'no-entry' || code === 'not-directory') return;
      throw ioError('delete', path, e);
    }
    // Remove directories the delete left empty, so they do not pile up.
    for (let d = parentOf(path); d !== ''; d = parentOf(d)) {
      try {
        this.dir.removeDirectoryAt(d);
      } catch {
        break;
      }
    }
  }

  health() {
    this.tmpDir();
    const probe = `${TMP_DIR}/health-${randomName()}`;
    const file = fs('health write', TMP_DIR, () =>
      this.dir.openAt(NO_FOLLOW, probe, { create: true, exclusive: true }, { write: true }),
    );
    try {
      writeAll(file, encoder.encode('ok'), 0n, TMP_DIR);
    } finally {
      close(file);
    }
    fs('health remove', TMP_DIR, () => this.dir.unlinkFileAt(probe));
    return `directory \`${this.root}\` is readable and writable`;
  }

  list(prefix, cursor, limit) {
    if (prefix.includes('\0') || prefix.startsWith('/') || prefix.split('/').some((s) => s === '..')) {
      throw wharfError('invalid', `invalid list prefix \`${prefix}\``);
    }
    const max = Math.min(Math.max(limit, 1), LIST_MAX_LIMIT);
    // Walk from the deepest directory the prefix names completely.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const walk = { prefix, cursor, limit: max, out: [], more: false };
    this.walk(base, walk);
    const last = walk.out[walk.out.length - 1];
    return { entries: walk.out, nextCursor: walk.more && last ? last.path : undefined };
  }

  /**
   * Depth-first walk in byte order of full paths. Sorting a directory's
   * entries by `name` for files and `name/` for directories gives exactly the
   * byte order of the paths below them.
   */
  walk(dirKey, w) {
    const keys = this.readDir(dirKey);
    if (keys === undefined) return;
    keys.sort((a, b) => compareBytes(a.key, b.key));
    const c = w.cursor;
    for (const { key, isDir } of keys) {
      // Skip what cannot match the prefix.
      if (!(key.startsWith(w.prefix) || (isDir && w.prefix.startsWith(key)))) continue;
      // Skip what sorts at or before the cursor.
      if (c !== undefined) {
        if (isDir) {
          if (compareBytes(key, c) < 0 && !c.startsWith(key)) continue;
        } else if (compareBytes(key, c) <= 0) {
          continue;
        }
      }
      if (isDir) {
        this.walk(key, w);
        if (w.more) return;
      } else {
        if (w.out.length === w.limit) {
          w.more = true;
          return;
        }
        let st;
        try {
          st = this.dir.statAt(FOLLOW, key);
        } catch (e) {
          if (fsCode(e) === 'no-entry') continue; // deleted meanwhile
          throw ioError('list', key, e);
        }
        if (st.type === 'regular-file') w.out.push(metaOf(key, st));
      }
    }
  }

  /** The entries of one directory as `{ key, isDir }`; undefined if it is gone. */
  readDir(dirKey) {
    let dir = this.dir;
    if (dirKey !== '') {
      try {
        dir = this.dir.openAt(NO_FOLLOW, dirKey.slice(0, -1), { directory: true }, { read: true });
      } catch (e) {
        const code = fsCode(e);
        if (code === 'no-entry' || code === 'not-directory') return undefined;
        throw ioError('list', dirKey, e);
      }
    }
    const keys = [];
    let stream;
    try {
      stream = fs('list', dirKey, () => dir.readDirectory());
      for (;;) {
        let entry;
        try {
          entry = stream.readDirectoryEntry();
        } catch (e) {
          // A name that is not UTF-8 cannot be an object path: skip it.
          if (fsCode(e) === 'illegal-byte-sequence') continue;
          throw ioError('list', dirKey, e);
        }
        if (entry === undefined) break;
        const { name, type } = entry;
        if (dirKey === '' && name.startsWith('.wharf')) continue;
        const isDir = type === 'directory';
        keys.push({ key: isDir ? `${dirKey}${name}/` : `${dirKey}${name}`, isDir });
      }
    } finally {
      close(stream);
      if (dir !== this.dir) close(dir);
    }
    return keys;
  }

  read(path, range) {
    checkPath(path);
    let file;
    try {
      file = this.dir.openAt(FOLLOW, path, {}, { read: true });
    } catch (e) {
      const code = fsCode(e);
      if (code === 'not-directory' || code === 'is-directory') {
        throw wharfError('not-found', `read \`${path}\`: not an object`);
      }
      throw ioError('read', path, e);
    }
    try {
      const st = fs('read', path, () => file.stat());
      if (st.type !== 'regular-file') throw wharfError('not-found', `read \`${path}\`: not an object`);
      const size = st.size;
      let start = 0n;
      let end = size;
      if (range !== undefined) {
        if (range.end !== undefined && range.end < range.start) {
          throw wharfError('invalid', `read \`${path}\`: range end before start`);
        }
        end = range.end !== undefined && range.end < size ? range.end : size;
        start = range.start < end ? range.start : end;
      }
      return new Reader(file, path, start, end);
    } catch (e) {
      close(file);
      throw e;
    }
  }

  /**
   * Waits for the lock of `path`'s updates; returns the function that
   * releases it.
   */
  lockUpdate(path) {
    const lock = `${TMP_DIR}/${lockName(path)}`;
    const start = Date.now();
    let pauseMs = 1;
    for (;;) {
      try {
        close(this.dir.openAt(NO_FOLLOW, lock, { create: true, exclusive: true }, { write: true }));
        return () => {
          try {
            this.dir.unlinkFileAt(lock);
          } catch {
            // Taken over as stale meanwhile: nothing of ours to remove.
          }
        };
      } catch (e) {
        if (fsCode(e) !== 'exist') throw ioError('write', path, e);
      }
      if (this.takeOverIfStale(lock)) continue;
      if (Date.now() - start > LOCK_WAIT_MS) {
        throw wharfError(
          'transient',
          `another update of the object held its lock for ${LOCK_WAIT_MS / 1000} s (\`${lock}\`)`,
        );
      }
      sleepMs(pauseMs);
      pauseMs = Math.min(pauseMs * 2, LOCK_MAX_PAUSE_MS);
    }
  }

  /**
   * Removes the lock file `lock` if it is stale; whether it is gone. It is
   * moved aside first and looked at there, so that of two updates that
   * both saw it stale, the later one cannot remove a lock the earlier one
   * took since (such a lock goes back).
   */
  takeOverIfStale(lock) {
    if (!this.isStale(lock)) return false;
    const aside = `${TMP_DIR}/stale-${randomName()}`;
    try {
      this.dir.renameAt(lock, this.dir, aside);
    } catch {
      // Released or taken over meanwhile.
      return true;
    }
    if (!this.isStale(aside)) {
      try {
        this.dir.linkAt(NO_FOLLOW, aside, this.dir, lock);
      } catch {
        // Someone holds the lock again; theirs stands.
      }
    }
    try {
      this.dir.unlinkFileAt(aside);
    } catch {
      // The sweep of stale temporaries removes it.
    }
    return true;
  }

  /** Whether the file `name` was last modified more than STALE_LOCK_MS ago. */
  isStale(name) {
    try {
      const ts = this.dir.statAt(NO_FOLLOW, name).dataModificationTimestamp;
      return ts !== undefined && Date.now() - Number(ts.seconds) * 1000 > STALE_LOCK_MS;
    } catch {
      return false;
    }
  }

  tmpDir() {
    try {
      this.dir.createDirectoryAt(TMP_DIR);
    } catch (e) {
      if (fsCode(e) !== 'exist') throw ioError('write', TMP_DIR, e);
    }
  }

  /** Creates `dir` and its missing parents; an existing one is fine. */
  mkdirAll(dir, path) {
    if (dir === '') return;
    try {
      this.dir.createDirectoryAt(dir);
    } catch (e) {
      const code = fsCode(e);
      if (code === 'exist') return;
      if (code !== 'no-entry') throw ioError('write', path, e);
      this.mkdirAll(parentOf(dir), path);
      try {
        this.dir.createDirectoryAt(dir);
      } catch (e2) {
        if (fsCode(e2) !== 'exist') throw ioError('write', path, e2);
      }
    }
  }

  write(path, mode, _sizeHint) {
    checkPath(path);
    this.tmpDir();
    const name = randomName();
    // A cheap, occasional sweep of temporaries left by killed writes.
    if (name.endsWith('00')) this.sweepStale();
    const tmp = `${TMP_DIR}/${name}`;
    const file = fs('write', path, () =>
      this.dir.openAt(NO_FOLLOW, tmp, { create: true, exclusive: true }, { write: true }),
    );
    return new Writer(this, file, tmp, path, mode);
  }

  copy(source, destination, mode) {
    const input = this.read(source, undefined);
    let output;
    try {
      output = this.write(destination, mode, undefined);
      for (;;) {
        const chunk = input.next(COPY_CHUNK);
        if (chunk.length === 0) break;
        output.appendBytes(chunk);
      }
      return output.finish();
    } finally {
      input.done();
      if (output) output.abort();
    }
  }

  sweepStale() {
    const now = BigInt(Date.now());
    let tmp;
    let stream;
    try {
      tmp = this.dir.openAt(NO_FOLLOW, TMP_DIR, { directory: true }, { read: true, mutateDirectory: true });
      stream = tmp.readDirectory();
      for (let e = stream.readDirectoryEntry(); e !== undefined; e = stream.readDirectoryEntry()) {
        const ts = tmp.statAt(NO_FOLLOW, e.name).dataModificationTimestamp;
        if (ts && now - ts.seconds * 1000n > BigInt(STALE_TMP_MS)) tmp.unlinkFileAt(e.name);
      }
    } catch {
      // Best effort: a sweep that fails leaves the files for the next one.
    } finally {
      close(stream);
      close(tmp);
    }
  }
}

// ---------------------------------------------------------------------------
// Readers and writers.

class Reader {
  constructor(file, path, offset, end) {
    this.file = file;
    this.path = path;
    this.offset = offset;
    this.end = end;
    /** One buffer for every `next`: the bindings copy out of it. */
    this.buf = undefined;
  }

  next(maxBytes) {
    const remaining = this.end - this.offset;
    const want = Math.min(Number(remaining < BigInt(maxBytes) ? remaining : BigInt(maxBytes)), MAX_NEXT);
    if (!this.buf || this.buf.length < want) this.buf = new Uint8Array(want);
    const buf = this.buf.subarray(0, want);
    let filled = 0;
    while (filled < want) {
      // The host hands out at most 64 KiB per read call.
      const [data] = fs('read', this.path, () => this.file.read(BigInt(want - filled), this.offset));
      if (data.length === 0) break;
      buf.set(data, filled);
      filled += data.length;
      this.offset += BigInt(data.length);
      release(data);
    }
    if (filled < want) {
      throw wharfError(
        'backend',
        `read \`${this.path}\`: the file shrank while it was read (${want - filled} bytes missing)`,
      );
    }
    if (filled === 0) this.done();
    return buf;
  }

  done() {
    close(this.file);
    this.file = undefined;
    this.buf = undefined;
  }

  [dispose]() {
    this.done();
  }
}

class Writer {
  constructor(backend, file, tmp, path, mode) {
    this.backend = backend;
    this.file = file;
    this.tmp = tmp;
    this.path = path;
    this.mode = mode;
    this.offset = 0n;
  }

  /** The export: `chunk` is a fresh copy the bindings made for this call. */
  append(chunk) {
    this.appendBytes(chunk);
    release(chunk);
  }

  appendBytes(chunk) {
    if (!this.file) throw wharfError('invalid', 'append after finish or abort');
    this.offset = writeAll(this.file, chunk, this.offset, this.path);
  }

  finish() {
    if (!this.file) throw wharfError('invalid', 'finish after finish or abort');
    const dir = this.backend.dir;
    const { path, tmp } = this;
    try {
      const file = this.file;
      this.file = undefined;
      try {
        // The etag is size and mtime: stamp the mtime from the wall clock
        // (nanoseconds), not the kernel's file time, which before Linux 6.13
        // moves in ticks of 1-10 ms, so two same-size writes in one tick
        // would share an etag and a stale `update` would win.
        fs('write', path, () => file.setTimes({ tag: 'no-change' }, { tag: 'timestamp', val: wallClockNow() }));
        fs('write', path, () => file.sync());
      } finally {
        close(file);
      }
      // Makes the destination's directories, then runs `commit`. A concurrent
      // delete may remove a directory it just emptied in between: make it
      // again and retry.
      const commit = (op) => {
        for (let attempt = 1; ; attempt++) {
          this.backend.mkdirAll(parentOf(path), path);
          try {
            return op();
          } catch (e) {
            if (fsCode(e) !== 'no-entry' || attempt === 3) throw e;
          }
        }
      };
      switch (this.mode.tag) {
        case 'overwrite':
          fs('write', path, () => commit(() => dir.renameAt(tmp, dir, path)));
          break;
        case 'create':
          // link() fails atomically when the destination exists.
          try {
            commit(() => dir.linkAt(NO_FOLLOW, tmp, dir, path));
          } catch (e) {
            if (fsCode(e) === 'exist') {
              throw wharfError('already-exists', `write \`${path}\`: the object already exists`);
            }
            throw ioError('write', path, e);
          }
          break;
        case 'update': {
          const expected = this.mode.val;
          // Held from the comparison to the rename.
          const unlock = this.backend.lockUpdate(path);
          try {
            let current;
            try {
              current = metaOf(path, dir.statAt(FOLLOW, path)).etag;
            } catch (e) {
              if (fsCode(e) !== 'no-entry') throw ioError('write', path, e);
            }
            if (current !== expected) {
              throw wharfError(
                'precondition-failed',
                `etag is ${current ?? 'absent (no object)'}, expected ${expected}`,
              );
            }
            fs('write', path, () => commit(() => dir.renameAt(tmp, dir, path)));
          } finally {
            unlock();
          }
          break;
        }
        default:
          throw wharfError('invalid', `unknown put mode \`${this.mode.tag}\``);
      }
      return metaOf(path, fs('write', path, () => dir.statAt(FOLLOW, path)));
    } finally {
      this.removeTmp();
    }
  }

  abort() {
    if (this.file) {
      close(this.file);
      this.file = undefined;
      this.removeTmp();
    }
  }

  /** Leaves nothing behind; after a rename the temporary is already gone. */
  removeTmp() {
    try {
      this.backend.dir.unlinkFileAt(this.tmp);
    } catch {
      // Gone already (renamed), or it cannot be removed: nothing to do.
    }
  }

  [dispose]() {
    this.abort();
  }
}

// ---------------------------------------------------------------------------
// The export: `wharf:storage/adapter` as an object holding `open` and the
// interface's resources as classes.

export const adapter = {
  open(config) {
    let root = '/data';
    for (const [key, value] of config) {
      if (key === 'root') root = value;
      else throw wharfError('invalid', `unknown config key \`${key}\` (known: root)`);
    }
    return new Backend(root, openRoot(root));
  },
  Backend,
  Reader,
  Writer,
};
