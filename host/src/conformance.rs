//! The conformance suite every adapter must pass, run through the host.
//!
//! Which cases apply comes from the adapter's [`Capabilities`] (and whether
//! it lists pending uploads at all, or can be opened again with another
//! config), never from a skip list. It lives in the library so `cargo test`
//! and the `wharf` binary run the same cases. The cases about what happens
//! meanwhile (racing writers, overtaken readers and listings) are in
//! [`concurrent`].

mod concurrent;

use crate::adapter::{Adapter, ByteRange, Capabilities, PutMode};
use crate::error::{ErrorKind, Result};
use crate::path::ObjectPath;
use bytes::Bytes;
use concurrent::{
    cannot_reopen, list_during_writes_sorted_unique, racing_create_one_wins, racing_update_one_wins,
    reader_sees_one_version, unknown_config_key_rejected,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much the suite does.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Size of the large streamed round trip (default 1 GiB).
    pub large_object: u64,
    /// Keys written for the pagination case (default 2,500).
    pub list_keys: usize,
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            large_object: 1 << 30,
            list_keys: 2500,
            filter: None,
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed, with the reason.
    Failed(String),
    /// The adapter's capabilities say it does not apply.
    NotApplicable(&'static str),
}

/// One case's name, outcome and duration.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// Case name.
    pub name: &'static str,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Backend name.
    pub backend: String,
    /// Every case.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// Cases that failed.
    pub fn failures(&self) -> Vec<&CaseReport> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
            .collect()
    }

    /// Names of the cases that did not apply, in suite order.
    pub fn not_applicable(&self) -> Vec<&'static str> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::NotApplicable(_)))
            .map(|c| c.name)
            .collect()
    }

    /// Number of passed cases.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.outcome == Outcome::Passed).count()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.cases {
            let (status, why) = match &c.outcome {
                Outcome::Passed => ("pass", String::new()),
                Outcome::Failed(r) => ("FAIL", r.clone()),
                Outcome::NotApplicable(r) => ("n/a ", (*r).to_string()),
            };
            writeln!(f, "{status}  {:<34} {:>8.2?}  {why}", c.name, c.elapsed)?;
        }
        write!(
            f,
            "{}: {} passed, {} failed",
            self.backend,
            self.passed(),
            self.failures().len()
        )
    }
}

type CaseFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, std::result::Result<(), String>>;

struct Case {
    name: &'static str,
    /// `Some(reason)` when the case does not apply to this adapter.
    skip: fn(&Ctx) -> Option<&'static str>,
    run: CaseFn,
}

struct Ctx {
    adapter: Arc<dyn Adapter>,
    caps: Capabilities,
    prefix: String,
    opts: SuiteOptions,
    /// `list_pending` answers something other than `unsupported`.
    pending_uploads: bool,
}

impl Ctx {
    fn path(&self, rel: &str) -> ObjectPath {
        ObjectPath::parse(&format!("{}{rel}", self.prefix)).expect("suite paths are valid")
    }
}

fn always(_: &Ctx) -> Option<&'static str> {
    None
}

macro_rules! case {
    ($name:ident, $skip:expr) => {
        Case {
            name: stringify!($name),
            skip: $skip,
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

fn cases() -> Vec<Case> {
    vec![
        case!(round_trip_empty, always),
        case!(round_trip_one_byte, always),
        case!(round_trip_10_mib, always),
        case!(round_trip_many_small_appends, always),
        case!(round_trip_large_streamed, always),
        case!(stat_exists_and_missing, always),
        case!(read_missing_is_not_found, always),
        case!(overwrite_replaces, always),
        case!(reader_sees_one_version, always),
        case!(range_start_only, |c| (!c.caps.read_range).then_some("no read_range")),
        case!(range_start_end, |c| (!c.caps.read_range).then_some("no read_range")),
        case!(range_past_end, |c| (!c.caps.read_range).then_some("no read_range")),
        case!(create_on_existing_fails, |c| (!c.caps.write_create)
            .then_some("no write_create")),
        case!(update_with_stale_etag_fails, |c| (!c.caps.write_update)
            .then_some("no write_update")),
        case!(racing_create_one_wins, |c| (!c.caps.write_create)
            .then_some("no write_create")),
        case!(racing_update_one_wins, |c| (!c.caps.write_update)
            .then_some("no write_update")),
        case!(delete_missing_succeeds, always),
        case!(delete_removes, always),
        case!(abort_leaves_nothing, always),
        case!(dropped_writer_leaves_nothing, always),
        case!(unicode_and_spaces_in_keys, always),
        case!(escaping_paths_rejected, always),
        case!(list_paginated, always),
        case!(list_prefix_is_a_string_prefix, always),
        case!(list_during_writes_sorted_unique, always),
        case!(copy_object, |c| (!c.caps.copy).then_some("no copy")),
        case!(health_reports_ok, always),
        case!(unknown_config_key_rejected, cannot_reopen),
        case!(pending_upload_listed_and_aborted, |c| (!c.pending_uploads)
            .then_some("lists no pending uploads")),
    ]
}

/// Runs the suite against `adapter`, under a fresh prefix that is removed
/// afterwards.
pub async fn run(adapter: Arc<dyn Adapter>, opts: SuiteOptions) -> Result<Report> {
    let caps = adapter.capabilities();
    let prefix = format!("wharf-conformance/{:016x}/", crate::runtime::rand_u64());
    let pending_uploads = !matches!(
        adapter.list_pending(&prefix, None, 1).await,
        Err(e) if e.kind() == ErrorKind::Unsupported
    );
    let ctx = Ctx {
        adapter: adapter.clone(),
        caps,
        prefix,
        opts,
        pending_uploads,
    };
    let mut reports = Vec::new();
    for case in cases() {
        if ctx.opts.filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let start = Instant::now();
        let outcome = match (case.skip)(&ctx) {
            Some(why) => Outcome::NotApplicable(why),
            None => match (case.run)(&ctx).await {
                Ok(()) => Outcome::Passed,
                Err(why) => Outcome::Failed(why),
            },
        };
        reports.push(CaseReport {
            name: case.name,
            outcome,
            elapsed: start.elapsed(),
        });
    }
    cleanup(&ctx).await;
    Ok(Report {
        backend: adapter.name().to_string(),
        cases: reports,
    })
}

async fn cleanup(ctx: &Ctx) {
    let mut cursor = None;
    loop {
        let Ok(page) = ctx.adapter.list(&ctx.prefix, cursor.as_deref(), 1000).await else {
            return;
        };
        for e in &page.entries {
            if let Ok(p) = ObjectPath::parse(&e.path) {
                let _ = ctx.adapter.delete(&p).await;
            }
        }
        match page.next_cursor {
            Some(c) if !page.entries.is_empty() => cursor = Some(c),
            _ => return,
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), produced a chunk at a time.
pub struct DataStream {
    state: u64,
    left: u64,
}

impl DataStream {
    /// `len` bytes from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        DataStream {
            state: seed | 1,
            left: len,
        }
    }

    /// The next chunk of at most `max` bytes; `None` at the end.
    pub fn next_chunk(&mut self, max: usize) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let n = (max as u64).min(self.left) as usize;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            v.extend_from_slice(&self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        v.truncate(n);
        self.left -= n as u64;
        Some(Bytes::from(v))
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

async fn put(ctx: &Ctx, rel: &str, data: &[u8], mode: PutMode) -> Result<crate::ObjectMeta> {
    let mut w = ctx.adapter.write(&ctx.path(rel), mode, Some(data.len() as u64)).await?;
    if !data.is_empty() {
        w.append(Bytes::copy_from_slice(data)).await?;
    }
    w.finish().await
}

async fn get(ctx: &Ctx, rel: &str, range: Option<ByteRange>) -> Result<Vec<u8>> {
    let mut r = ctx.adapter.read(&ctx.path(rel), range).await?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

async fn round_trip(ctx: &Ctx, rel: &str, data: &[u8]) -> std::result::Result<(), String> {
    let meta = put(ctx, rel, data, PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    if meta.size != data.len() as u64 {
        return Err(format!("finish reported {} bytes, wrote {}", meta.size, data.len()));
    }
    let back = get(ctx, rel, None).await.map_err(|e| err("read", e))?;
    if back != data {
        return Err(format!(
            "read back {} bytes that differ from the {} written",
            back.len(),
            data.len()
        ));
    }
    Ok(())
}

async fn round_trip_empty(ctx: &Ctx) -> std::result::Result<(), String> {
    round_trip(ctx, "empty", b"").await
}

async fn round_trip_one_byte(ctx: &Ctx) -> std::result::Result<(), String> {
    round_trip(ctx, "one", b"x").await
}

async fn round_trip_10_mib(ctx: &Ctx) -> std::result::Result<(), String> {
    let mut d = DataStream::new(10, 10 << 20);
    round_trip(ctx, "ten-mib", &d.next_chunk(10 << 20).unwrap_or_default()).await
}

async fn round_trip_many_small_appends(ctx: &Ctx) -> std::result::Result<(), String> {
    let path = ctx.path("small-appends");
    let mut w = ctx
        .adapter
        .write(&path, PutMode::Overwrite, None)
        .await
        .map_err(|e| err("write", e))?;
    let mut d = DataStream::new(7, 1000 * 1031);
    let mut all = Vec::new();
    while let Some(c) = d.next_chunk(1031) {
        all.extend_from_slice(&c);
        w.append(c).await.map_err(|e| err("append", e))?;
    }
    w.finish().await.map_err(|e| err("finish", e))?;
    let back = get(ctx, "small-appends", None).await.map_err(|e| err("read", e))?;
    (back == all)
        .then_some(())
        .ok_or_else(|| "content differs after 1,000 small appends".into())
}

async fn round_trip_large_streamed(ctx: &Ctx) -> std::result::Result<(), String> {
    let size = ctx.opts.large_object;
    if let Some(max) = ctx.caps.max_object_size
        && max < size
    {
        return Ok(());
    }
    let path = ctx.path("large");
    let mut w = ctx
        .adapter
        .write(&path, PutMode::Overwrite, Some(size))
        .await
        .map_err(|e| err("write", e))?;
    let mut d = DataStream::new(42, size);
    let mut h = Sha256::new();
    while let Some(c) = d.next_chunk(8 << 20) {
        h.update(&c);
        w.append(c).await.map_err(|e| err("append", e))?;
    }
    let meta = w.finish().await.map_err(|e| err("finish", e))?;
    if meta.size != size {
        return Err(format!("finish reported {} bytes, wrote {size}", meta.size));
    }
    let sent = h.finalize();
    let mut r = ctx.adapter.read(&path, None).await.map_err(|e| err("read", e))?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(c) = r.next_chunk(8 << 20).await.map_err(|e| err("read", e))? {
        n += c.len() as u64;
        h.update(&c);
    }
    if n != size || h.finalize() != sent {
        return Err(format!(
            "read back {n} bytes whose sha256 differs from the {size} written"
        ));
    }
    ctx.adapter.delete(&path).await.map_err(|e| err("delete", e))
}

async fn stat_exists_and_missing(ctx: &Ctx) -> std::result::Result<(), String> {
    let meta = put(ctx, "stat-me", b"12345", PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    let s = ctx
        .adapter
        .stat(&ctx.path("stat-me"))
        .await
        .map_err(|e| err("stat", e))?;
    if s.size != 5 || s.path != ctx.path("stat-me").as_str() {
        return Err(format!("stat returned {s:?}"));
    }
    if meta.etag.is_some() && s.etag != meta.etag {
        return Err(format!(
            "stat etag {:?} differs from the one finish returned {:?}",
            s.etag, meta.etag
        ));
    }
    if !ctx
        .adapter
        .exists(&ctx.path("stat-me"))
        .await
        .map_err(|e| err("exists", e))?
    {
        return Err("exists is false for an object just written".into());
    }
    if ctx
        .adapter
        .exists(&ctx.path("never-written"))
        .await
        .map_err(|e| err("exists", e))?
    {
        return Err("exists is true for a missing object".into());
    }
    match ctx.adapter.stat(&ctx.path("never-written")).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => Err(format!("stat of a missing object gave {other:?}, expected not-found")),
    }
}

async fn read_missing_is_not_found(ctx: &Ctx) -> std::result::Result<(), String> {
    match get(ctx, "never-written", None).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => Err(format!("reading a missing object gave {other:?}, expected not-found")),
    }
}

async fn overwrite_replaces(ctx: &Ctx) -> std::result::Result<(), String> {
    put(ctx, "over", b"first version", PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    put(ctx, "over", b"second", PutMode::Overwrite)
        .await
        .map_err(|e| err("overwrite", e))?;
    let back = get(ctx, "over", None).await.map_err(|e| err("read", e))?;
    (back == b"second")
        .then_some(())
        .ok_or_else(|| format!("read {:?} after overwrite", String::from_utf8_lossy(&back)))
}

const RANGE_DATA: &[u8] = b"0123456789abcdefghij";

async fn range_case(ctx: &Ctx, rel: &str, range: ByteRange, expect: &[u8]) -> std::result::Result<(), String> {
    put(ctx, rel, RANGE_DATA, PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    let got = get(ctx, rel, Some(range)).await.map_err(|e| err("ranged read", e))?;
    (got == expect).then_some(()).ok_or_else(|| {
        format!(
            "range {range:?} gave {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expect)
        )
    })
}

async fn range_start_only(ctx: &Ctx) -> std::result::Result<(), String> {
    range_case(ctx, "range-a", ByteRange { start: 15, end: None }, b"fghij").await
}

async fn range_start_end(ctx: &Ctx) -> std::result::Result<(), String> {
    range_case(ctx, "range-b", ByteRange { start: 3, end: Some(7) }, b"3456").await
}

async fn range_past_end(ctx: &Ctx) -> std::result::Result<(), String> {
    range_case(
        ctx,
        "range-c",
        ByteRange {
            start: 18,
            end: Some(100),
        },
        b"ij",
    )
    .await?;
    range_case(ctx, "range-c", ByteRange { start: 50, end: None }, b"").await
}

async fn create_on_existing_fails(ctx: &Ctx) -> std::result::Result<(), String> {
    put(ctx, "create", b"one", PutMode::Create)
        .await
        .map_err(|e| err("first create", e))?;
    match put(ctx, "create", b"two", PutMode::Create).await {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        other => return Err(format!("second create gave {other:?}, expected already-exists")),
    }
    let back = get(ctx, "create", None).await.map_err(|e| err("read", e))?;
    (back == b"one")
        .then_some(())
        .ok_or_else(|| "a failed create changed the object".into())
}

async fn update_with_stale_etag_fails(ctx: &Ctx) -> std::result::Result<(), String> {
    let m1 = put(ctx, "update", b"v1", PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    let e1 = m1
        .etag
        .ok_or("finish returned no etag although write_update is supported")?;
    let m2 = put(ctx, "update", b"v2-longer", PutMode::Update(e1.clone()))
        .await
        .map_err(|e| err("update with current etag", e))?;
    match put(ctx, "update", b"v3", PutMode::Update(e1)).await {
        Err(e) if e.kind() == ErrorKind::PreconditionFailed => {}
        other => {
            return Err(format!(
                "update with a stale etag gave {other:?}, expected precondition-failed"
            ));
        }
    }
    let back = get(ctx, "update", None).await.map_err(|e| err("read", e))?;
    if back != b"v2-longer" {
        return Err("a failed update changed the object".into());
    }
    match put(
        ctx,
        "update-missing",
        b"x",
        PutMode::Update(m2.etag.unwrap_or_default()),
    )
    .await
    {
        Err(e) if e.kind() == ErrorKind::PreconditionFailed => Ok(()),
        other => Err(format!(
            "update of a missing object gave {other:?}, expected precondition-failed"
        )),
    }
}

async fn delete_missing_succeeds(ctx: &Ctx) -> std::result::Result<(), String> {
    ctx.adapter
        .delete(&ctx.path("never-written"))
        .await
        .map_err(|e| err("delete of a missing object", e))
}

async fn delete_removes(ctx: &Ctx) -> std::result::Result<(), String> {
    put(ctx, "del/me", b"bye", PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    ctx.adapter
        .delete(&ctx.path("del/me"))
        .await
        .map_err(|e| err("delete", e))?;
    match ctx.adapter.stat(&ctx.path("del/me")).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => Err(format!("stat after delete gave {other:?}")),
    }
}

async fn abort_leaves_nothing(ctx: &Ctx) -> std::result::Result<(), String> {
    let path = ctx.path("aborted");
    let mut w = ctx
        .adapter
        .write(&path, PutMode::Overwrite, None)
        .await
        .map_err(|e| err("write", e))?;
    w.append(Bytes::from(vec![7u8; 1 << 20]))
        .await
        .map_err(|e| err("append", e))?;
    w.abort().await.map_err(|e| err("abort", e))?;
    if ctx.adapter.exists(&path).await.map_err(|e| err("exists", e))? {
        return Err("an aborted write is visible".into());
    }
    no_entries(ctx, "aborted").await
}

async fn dropped_writer_leaves_nothing(ctx: &Ctx) -> std::result::Result<(), String> {
    let path = ctx.path("dropped");
    let mut w = ctx
        .adapter
        .write(&path, PutMode::Overwrite, None)
        .await
        .map_err(|e| err("write", e))?;
    w.append(Bytes::from(vec![7u8; 1 << 20]))
        .await
        .map_err(|e| err("append", e))?;
    drop(w);
    if ctx.adapter.exists(&path).await.map_err(|e| err("exists", e))? {
        return Err("a dropped write is visible".into());
    }
    no_entries(ctx, "dropped").await
}

/// A write started and not finished, as a killed host leaves it, shows in
/// `list_pending`, never in `list`, and `abort_pending` removes it, twice
/// without error. The writer stays open meanwhile (leaking it would leak
/// the layers' tasks and threads too); dropped at the end, its own cleanup
/// finds the upload gone. The backends' own tests kill the write for real.
async fn pending_upload_listed_and_aborted(ctx: &Ctx) -> std::result::Result<(), String> {
    let path = ctx.path("pending/model.bin");
    let prefix = format!("{}pending/", ctx.prefix);
    let mut w = ctx
        .adapter
        .write(&path, PutMode::Overwrite, None)
        .await
        .map_err(|e| err("write", e))?;
    // Two of the smallest parts: enough for an S3 multipart upload.
    let part = (ctx.caps.write_min_chunk as usize).max(1 << 20);
    for _ in 0..2 {
        w.append(Bytes::from(vec![7u8; part]))
            .await
            .map_err(|e| err("append", e))?;
    }
    // Neither finished nor aborted: what the storage holds of a crash.
    let pending = all_pending(ctx, &prefix).await?;
    let Some(upload) = pending.iter().find(|u| u.path == path.as_str()) else {
        return Err(format!("list_pending does not show the unfinished write: {pending:?}"));
    };
    if ctx.adapter.exists(&path).await.map_err(|e| err("exists", e))? {
        return Err("an unfinished write is visible".into());
    }
    no_entries(ctx, "pending/").await?;
    ctx.adapter
        .abort_pending(upload)
        .await
        .map_err(|e| err("abort_pending", e))?;
    let left = all_pending(ctx, &prefix).await?;
    if left.iter().any(|u| u.upload_id == upload.upload_id) {
        return Err(format!("abort_pending left it listed: {left:?}"));
    }
    ctx.adapter
        .abort_pending(upload)
        .await
        .map_err(|e| err("abort_pending of an upload already gone", e))?;
    drop(w);
    if ctx.adapter.exists(&path).await.map_err(|e| err("exists", e))? {
        return Err("an aborted pending upload became visible".into());
    }
    Ok(())
}

async fn all_pending(ctx: &Ctx, prefix: &str) -> std::result::Result<Vec<crate::PendingUpload>, String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ctx
            .adapter
            .list_pending(prefix, cursor.as_deref(), 100)
            .await
            .map_err(|e| err("list_pending", e))?;
        out.extend(page.entries);
        match page.next_cursor {
            Some(c) if cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

async fn no_entries(ctx: &Ctx, rel: &str) -> std::result::Result<(), String> {
    let prefix = format!("{}{rel}", ctx.prefix);
    let page = ctx.adapter.list(&prefix, None, 10).await.map_err(|e| err("list", e))?;
    page.entries
        .is_empty()
        .then_some(())
        .ok_or_else(|| format!("listing shows {:?}", page.entries))
}

async fn unicode_and_spaces_in_keys(ctx: &Ctx) -> std::result::Result<(), String> {
    for rel in [
        "with space/and more.bin",
        "ünïcödé/模型/μοντέλο.onnx",
        "percent%20and+plus&amp;=.x",
    ] {
        round_trip(ctx, rel, rel.as_bytes())
            .await
            .map_err(|e| format!("{rel:?}: {e}"))?;
        let s = ctx.adapter.stat(&ctx.path(rel)).await.map_err(|e| err("stat", e))?;
        if s.path != ctx.path(rel).as_str() {
            return Err(format!("stat path {:?} differs from {rel:?}", s.path));
        }
    }
    Ok(())
}

async fn escaping_paths_rejected(ctx: &Ctx) -> std::result::Result<(), String> {
    for bad in ["../escape", "a/../../escape", "/etc/passwd", "nul\0byte", "a//b", "./a"] {
        if ObjectPath::parse(bad).is_ok() {
            return Err(format!("{bad:?} was accepted as an object path"));
        }
    }
    for bad in ["../", "/abs", "a/../"] {
        match ctx.adapter.list(bad, None, 10).await {
            Err(e) if e.kind() == ErrorKind::Invalid => {}
            other => return Err(format!("list prefix {bad:?} gave {other:?}, expected invalid")),
        }
    }
    Ok(())
}

async fn list_paginated(ctx: &Ctx) -> std::result::Result<(), String> {
    let n = ctx.opts.list_keys;
    let keys: Vec<String> = (0..n).map(|i| format!("list/{:02}/k{i:05}", i % 7)).collect();
    let writes: Vec<BoxFuture<'_, Result<crate::ObjectMeta>>> = keys
        .iter()
        .map(|k| Box::pin(put(ctx, k, k.as_bytes(), PutMode::Overwrite)) as BoxFuture<'_, _>)
        .collect();
    let results: Vec<_> = futures::stream::iter(writes).buffer_unordered(16).collect().await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        return Err(err("writing the keys", e));
    }
    let prefix = format!("{}list/", ctx.prefix);
    let limit = (n as u32 / 10).clamp(1, ctx.caps.list_max_limit);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ctx
            .adapter
            .list(&prefix, cursor.as_deref(), limit)
            .await
            .map_err(|e| err("list", e))?;
        pages += 1;
        if page.entries.len() > limit as usize {
            return Err(format!("a page held {} entries, limit {limit}", page.entries.len()));
        }
        seen.extend(page.entries.into_iter().map(|e| e.path));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        if pages > n + 10 {
            return Err("listing does not end".into());
        }
    }
    let mut want: Vec<String> = keys.iter().map(|k| format!("{}{k}", ctx.prefix)).collect();
    want.sort();
    if seen != want {
        let missing = want.iter().filter(|k| !seen.contains(k)).count();
        return Err(format!(
            "listed {} keys in {pages} pages, expected {} in order ({missing} missing)",
            seen.len(),
            want.len()
        ));
    }
    if pages < 2 {
        return Err("the listing was not paginated".into());
    }
    Ok(())
}

async fn list_prefix_is_a_string_prefix(ctx: &Ctx) -> std::result::Result<(), String> {
    for k in ["pfx/abc", "pfx/abd/x", "pfx/b", "pfx-other"] {
        put(ctx, k, b"x", PutMode::Overwrite)
            .await
            .map_err(|e| err("write", e))?;
    }
    let page = ctx
        .adapter
        .list(&format!("{}pfx/ab", ctx.prefix), None, 100)
        .await
        .map_err(|e| err("list", e))?;
    let got: Vec<String> = page
        .entries
        .into_iter()
        .map(|e| e.path[ctx.prefix.len()..].to_string())
        .collect();
    if got != ["pfx/abc", "pfx/abd/x"] {
        return Err(format!("prefix `pfx/ab` listed {got:?}"));
    }
    // A prefix running through an object (a file, to a filesystem) has
    // nothing under it: an empty page, not an error.
    let page = ctx
        .adapter
        .list(&format!("{}pfx/abc/", ctx.prefix), None, 100)
        .await
        .map_err(|e| err("list under an object", e))?;
    page.entries
        .is_empty()
        .then_some(())
        .ok_or_else(|| format!("prefix `pfx/abc/` listed {:?}", page.entries))
}

async fn copy_object(ctx: &Ctx) -> std::result::Result<(), String> {
    put(ctx, "copy/src", b"copy me", PutMode::Overwrite)
        .await
        .map_err(|e| err("write", e))?;
    ctx.adapter
        .copy(&ctx.path("copy/src"), &ctx.path("copy/dst"), PutMode::Overwrite)
        .await
        .map_err(|e| err("copy", e))?;
    let back = get(ctx, "copy/dst", None).await.map_err(|e| err("read copy", e))?;
    if back != b"copy me" {
        return Err("the copy differs".into());
    }
    if ctx.caps.write_create {
        match ctx
            .adapter
            .copy(&ctx.path("copy/src"), &ctx.path("copy/dst"), PutMode::Create)
            .await
        {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            other => return Err(format!("create-copy onto an existing object gave {other:?}")),
        }
    }
    Ok(())
}

async fn health_reports_ok(ctx: &Ctx) -> std::result::Result<(), String> {
    ctx.adapter.health().await.map(|_| ()).map_err(|e| err("health", e))
}
