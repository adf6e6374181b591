//! The Lua scripts that make commits, deletes and listings atomic. Redis runs
//! a script alone, so each is one indivisible step; chunk keys are built
//! inside from the prefix and the upload id (fine on a standalone server,
//! not in Redis Cluster).

/// Commits an upload. KEYS: manifest, index. ARGV: mode (`overwrite`,
/// `create`, `update`), expected etag, upload id (the new etag), size,
/// chunk size, chunk count, chunk key prefix, path.
///
/// Checks the mode against the current manifest, checks every chunk is
/// still there (and removes its expiry), writes the manifest, adds the path
/// to the index and unlinks the replaced upload's chunks. Answers
/// `{"ok", modified_ms}`, `{"exists", etag}`, `{"stale", etag or ""}` or
/// `{"lost", chunk}` (a chunk expired: nothing was changed but expiries).
pub const COMMIT: &str = r#"
local old = redis.call('HMGET', KEYS[1], 'etag', 'chunks')
local mode = ARGV[1]
if mode == 'create' and old[1] then
  return {'exists', old[1]}
end
if mode == 'update' and old[1] ~= ARGV[2] then
  return {'stale', old[1] or ''}
end
for i = 0, tonumber(ARGV[6]) - 1 do
  local key = ARGV[7] .. ARGV[3] .. ':' .. i
  if redis.call('PERSIST', key) == 0 and redis.call('EXISTS', key) == 0 then
    return {'lost', tostring(i)}
  end
end
local t = redis.call('TIME')
local ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'size', ARGV[4], 'chunk_size', ARGV[5], 'chunks', ARGV[6],
  'etag', ARGV[3], 'modified_ms', ms)
redis.call('ZADD', KEYS[2], 0, ARGV[8])
if old[1] and old[1] ~= ARGV[3] then
  for i = 0, tonumber(old[2]) - 1 do
    redis.call('UNLINK', ARGV[7] .. old[1] .. ':' .. i)
  end
end
return {'ok', ms}
"#;

/// Discards an upload unless it was committed. KEYS: manifest. ARGV: upload
/// id, chunks that may exist, chunk key prefix.
///
/// Answers the manifest's `modified_ms` if the upload is the committed
/// version (a commit whose reply was lost), nil after unlinking its chunks.
/// Being one step, it can never unlink the chunks of a committed object,
/// and a commit that comes after it finds its chunks gone.
pub const ABORT: &str = r#"
if redis.call('HGET', KEYS[1], 'etag') == ARGV[1] then
  return redis.call('HGET', KEYS[1], 'modified_ms')
end
for i = 0, tonumber(ARGV[2]) - 1 do
  redis.call('UNLINK', ARGV[3] .. ARGV[1] .. ':' .. i)
end
return false
"#;

/// Deletes an object: the manifest and its index entry first, then its
/// chunks, in one step. KEYS: manifest, index. ARGV: path, chunk key prefix.
/// Answers 1 if there was an object, 0 if not.
pub const DELETE: &str = r#"
local old = redis.call('HMGET', KEYS[1], 'etag', 'chunks')
redis.call('ZREM', KEYS[2], ARGV[1])
if not old[1] then
  return 0
end
redis.call('DEL', KEYS[1])
for i = 0, tonumber(old[2]) - 1 do
  redis.call('UNLINK', ARGV[2] .. old[1] .. ':' .. i)
end
return 1
"#;

/// One page of the listing. KEYS: index. ARGV: lex min, lex max, limit,
/// manifest key prefix.
///
/// Answers `{cursor, {path, size, etag, modified_ms, …}}` where `cursor` is
/// the last path of the page when more follow, "" otherwise. A path whose
/// manifest vanished (removed behind the adapter's back) is left out.
pub const LIST: &str = r#"
local limit = tonumber(ARGV[3])
local names = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, limit + 1)
local out = {}
for i = 1, math.min(#names, limit) do
  local m = redis.call('HMGET', ARGV[4] .. names[i], 'size', 'etag', 'modified_ms')
  if m[1] then
    out[#out + 1] = names[i]
    out[#out + 1] = m[1]
    out[#out + 1] = m[2] or ''
    out[#out + 1] = m[3] or ''
  end
end
local cursor = ''
if #names > limit then
  cursor = names[limit]
end
return {cursor, out}
"#;
