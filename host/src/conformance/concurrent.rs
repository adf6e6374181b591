//! Cases about what happens while something else happens: writers racing
//! for one object, a reader overtaken by an overwrite or a delete, a listing
//! overtaken by writes; and the config an adapter must refuse. Each one
//! orders the steps so that the flaw it looks for fails every run (see
//! `tests/fixtures/flawed`, which has each flaw on purpose).

use super::{Ctx, DataStream, err, get, put};
use crate::adapter::{ObjectReader, PutMode};
use crate::error::{ErrorKind, Result};
use bytes::Bytes;

/// A config key no adapter knows.
const UNKNOWN_KEY: &str = "wharf_conformance_unknown_key";

/// Writers racing for one object, all open at once: a stack whose
/// concurrency limit (or `pool.max`) allows fewer streams makes them wait.
const RACERS: usize = 4;

/// Size of each version of the object a reader is overtaken on: more than
/// the host, the adapter or a socket could have buffered at the first chunk.
const VERSION_SIZE: u64 = 8 << 20;
/// What the overtaken reader asks for at a time.
const READ_CHUNK: usize = 64 << 10;

/// Objects there before the listing starts, and the page size it uses.
const LISTED_KEYS: usize = 20;
const LIST_PAGE: u32 = 3;

/// Whether the suite can open the adapter again with another config.
pub(super) fn cannot_reopen(c: &Ctx) -> Option<&'static str> {
    c.adapter
        .reopen_with(UNKNOWN_KEY, "1")
        .is_none()
        .then_some("cannot be opened again with another config (a native adapter)")
}

pub(super) async fn unknown_config_key_rejected(ctx: &Ctx) -> std::result::Result<(), String> {
    let open = ctx
        .adapter
        .reopen_with(UNKNOWN_KEY, "1")
        .ok_or("the adapter cannot be opened again")?;
    match open.await {
        Err(e) if e.kind() == ErrorKind::Invalid => Ok(()),
        Ok(()) => Err(format!(
            "`open` accepted the unknown config key `{UNKNOWN_KEY}`; it must refuse it as invalid"
        )),
        Err(e) => Err(format!(
            "`open` with the unknown config key `{UNKNOWN_KEY}` gave {e}, expected invalid"
        )),
    }
}

/// What racer `i` writes: its own bytes, of its own length.
fn racer_bytes(i: usize) -> Vec<u8> {
    format!("racer {i} wrote this. ").repeat(i + 1).into_bytes()
}

/// Opens `RACERS` writers of `rel` in `mode` and appends each one's bytes
/// before any finishes (an adapter that checks the mode at `write` and
/// writes at `finish` lets every one through), then finishes them all at
/// once: exactly one must win, every other fail with `lost`, and the object
/// must then be the winner's bytes with the winner's etag.
async fn race(ctx: &Ctx, rel: &str, mode: PutMode, lost: ErrorKind) -> std::result::Result<(), String> {
    let path = ctx.path(rel);
    let mut writers = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let data = racer_bytes(i);
        let mut w = ctx
            .adapter
            .write(&path, mode.clone(), Some(data.len() as u64))
            .await
            .map_err(|e| err(&format!("writer {i}: write"), e))?;
        w.append(Bytes::from(data))
            .await
            .map_err(|e| err(&format!("writer {i}: append"), e))?;
        writers.push(w);
    }
    // Each on a task of its own, so that on a multi-threaded runtime they
    // run at the same time, not one after another between awaits.
    let finishing: Vec<_> = writers.into_iter().map(|w| tokio::spawn(w.finish())).collect();
    let mut winners = Vec::new();
    for (i, task) in finishing.into_iter().enumerate() {
        match task.await.map_err(|e| format!("writer {i}: finish did not end: {e}"))? {
            Ok(meta) => winners.push((i, meta)),
            Err(e) if e.kind() == lost => {}
            Err(e) => return Err(format!("writer {i}: finish gave {e}, expected success or {lost}")),
        }
    }
    let [(winner, meta)] = &winners[..] else {
        let who: Vec<usize> = winners.iter().map(|(i, _)| *i).collect();
        return Err(format!(
            "{} of {RACERS} racing writers succeeded (writers {who:?}), expected exactly one",
            who.len()
        ));
    };
    let back = get(ctx, rel, None).await.map_err(|e| err("read", e))?;
    if back != racer_bytes(*winner) {
        return Err(format!(
            "writer {winner} won, but the object reads as {:?}",
            String::from_utf8_lossy(&back)
        ));
    }
    let now = ctx.adapter.stat(&path).await.map_err(|e| err("stat", e))?;
    if meta.etag.is_some() && now.etag != meta.etag {
        return Err(format!(
            "writer {winner} won with etag {:?}, but stat shows {:?}",
            meta.etag, now.etag
        ));
    }
    Ok(())
}

pub(super) async fn racing_create_one_wins(ctx: &Ctx) -> std::result::Result<(), String> {
    race(ctx, "race/create", PutMode::Create, ErrorKind::AlreadyExists).await
}

pub(super) async fn racing_update_one_wins(ctx: &Ctx) -> std::result::Result<(), String> {
    let first = put(ctx, "race/update", b"the version every racer read", PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    let etag = first
        .etag
        .ok_or("finish returned no etag although write_update is supported")?;
    race(ctx, "race/update", PutMode::Update(etag), ErrorKind::PreconditionFailed).await
}

/// A reader that read its first chunk before an overwrite, and another
/// before a delete, either read the version they started on to its end or
/// fail: never bytes of the new version, mixed or whole.
pub(super) async fn reader_sees_one_version(ctx: &Ctx) -> std::result::Result<(), String> {
    let size = ctx.caps.max_object_size.map_or(VERSION_SIZE, |m| m.min(VERSION_SIZE));
    let old = version(1, size);
    let new = version(2, size);

    put(ctx, "versions/overwritten", &old, PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    let (reader, first) = start_reading(ctx, "versions/overwritten").await?;
    put(ctx, "versions/overwritten", &new, PutMode::Overwrite)
        .await
        .map_err(|e| err("overwrite", e))?;
    one_version(reader, first, &old, Some(&new))
        .await
        .map_err(|e| format!("a read overtaken by an overwrite: {e}"))?;

    put(ctx, "versions/deleted", &old, PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    let (reader, first) = start_reading(ctx, "versions/deleted").await?;
    ctx.adapter
        .delete(&ctx.path("versions/deleted"))
        .await
        .map_err(|e| err("delete", e))?;
    one_version(reader, first, &old, None)
        .await
        .map_err(|e| format!("a read overtaken by a delete: {e}"))
}

/// The bytes of one version of the object a reader is overtaken on.
fn version(seed: u64, size: u64) -> Vec<u8> {
    DataStream::new(seed, size)
        .next_chunk(size as usize)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// A reader of `rel` and its first chunk.
async fn start_reading(ctx: &Ctx, rel: &str) -> std::result::Result<(Box<dyn ObjectReader>, Vec<u8>), String> {
    let mut reader = ctx
        .adapter
        .read(&ctx.path(rel), None)
        .await
        .map_err(|e| err("read", e))?;
    let first = reader
        .next_chunk(READ_CHUNK)
        .await
        .map_err(|e| err("read", e))?
        .ok_or("the reader ended before its first chunk")?;
    Ok((reader, first.to_vec()))
}

/// Reads on from `first` to the end: an error, or exactly `old`.
async fn one_version(
    mut reader: Box<dyn ObjectReader>,
    first: Vec<u8>,
    old: &[u8],
    new: Option<&[u8]>,
) -> std::result::Result<(), String> {
    let mut got = first;
    let read: Result<()> = async {
        while let Some(c) = reader.next_chunk(READ_CHUNK).await? {
            got.extend_from_slice(&c);
            if got.len() > 2 * old.len() {
                break;
            }
        }
        Ok(())
    }
    .await;
    if read.is_err() || got == old {
        // Failing is allowed; the old version whole is what was asked for.
        return Ok(());
    }
    if new == Some(&got[..]) {
        return Err("the reader returned the new version whole".into());
    }
    let at = got
        .iter()
        .zip(old)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(old.len()));
    let from_new = new.is_some_and(|n| n.get(at..at + 16).is_some_and(|n| got.get(at..at + 16) == Some(n)));
    Err(format!(
        "the reader returned {} bytes that leave the version it started on at byte {at}{}",
        got.len(),
        if from_new { ", for the new version's bytes" } else { "" }
    ))
}

/// A listing in small pages, with one key written before its cursor and
/// one right after it between every two pages: every path comes once, in
/// ascending order, and every key there before the listing is in it. A
/// cursor that counts entries instead of naming the last one repeats a key
/// after the first page.
pub(super) async fn list_during_writes_sorted_unique(ctx: &Ctx) -> std::result::Result<(), String> {
    let keys: Vec<String> = (0..LISTED_KEYS).map(|i| format!("listing/b{i:02}")).collect();
    for k in &keys {
        put(ctx, k, k.as_bytes(), PutMode::Overwrite)
            .await
            .map_err(|e| err("write", e))?;
    }
    let prefix = format!("{}listing/", ctx.prefix);
    let limit = LIST_PAGE.min(ctx.caps.list_max_limit);
    let mut listed: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for page_no in 0.. {
        if page_no > 4 * LISTED_KEYS {
            return Err("the listing does not end".into());
        }
        let page = ctx
            .adapter
            .list(&prefix, cursor.as_deref(), limit)
            .await
            .map_err(|e| err("list", e))?;
        listed.extend(page.entries.into_iter().map(|e| e.path));
        let Some(next) = page.next_cursor else { break };
        cursor = Some(next);
        // One key before the last one listed, one just after it.
        let before = format!("listing/a{page_no:02}");
        let last = listed.last().map_or("", |p| &p[ctx.prefix.len()..]);
        let after = format!("{last}+");
        for k in [before, after] {
            put(ctx, &k, k.as_bytes(), PutMode::Overwrite)
                .await
                .map_err(|e| err("write between pages", e))?;
        }
    }
    if let Some(w) = listed.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "the listing is not strictly ascending: {:?} then {:?}",
            w[0], w[1]
        ));
    }
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !listed.contains(&format!("{}{k}", ctx.prefix)))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the listing left out keys that were there before it began: {missing:?}"
        ));
    }
    Ok(())
}
