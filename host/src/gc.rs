//! `wharf gc`: finishes what crashed saves and transactions left, and
//! removes what no committed version or running transaction uses.
//!
//! In order, over one backend:
//! 1. Transaction records (`_wharf/tx/`) are listed first, then every
//!    `wharf.json` and alias under `models/`. A transaction's marks are all
//!    written before its record, so every mark of a record listed in step 1
//!    is seen in this scan.
//! 2. Each marked object is settled by its transaction's outcome; a
//!    transaction with no outcome that started before the grace period is
//!    abandoned first (its `aborted` record is created create-only, so a
//!    commit racing it either wins, or fails and is told so).
//! 3. Records from step 1 whose marks are all settled are removed.
//! 4. Version data (`models/M/_wharf/uploads/<id>/`, `models/M/V/<id>/`)
//!    that no `wharf.json` names (a save that crashed before its commit, a
//!    delete that crashed after it), last modified before the grace
//!    period, is removed. A running save is younger than the grace period;
//!    with `--older-than 0s` it is not protected.
//! 5. Pending uploads (writes started and never committed, kept inside the
//!    storage where `list` cannot see them: S3 multipart uploads, temporary
//!    files) anywhere in the backend, started before the grace period, are
//!    aborted through the adapter, as an S3 lifecycle rule would. A backend
//!    that cannot list them says so in [`GcReport::pending_unsupported`].
//!
//! Objects outside `models/` and `_wharf/`, and anything under `models/`
//! that is not of the shapes above, are never touched.

use crate::adapter::ObjectMeta;
use crate::error::Result;
use crate::path::ObjectPath;
use crate::registry::{ALIASES, TX_DIR, TxState, UPLOADS, is_tx_id, tx_started};
use crate::service::{MANIFEST, Slot, StorageService};
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `gc` may remove.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Only what is older than this (default 24 h): a save or transaction
    /// still running is younger.
    pub older_than: Duration,
    /// Report, remove nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            older_than: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

/// One thing `gc` removed (or, dry, would remove).
#[derive(Clone, Debug, Serialize)]
pub struct GcItem {
    /// The object's path, or the transaction's id.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Why: `orphaned-data`, `abandoned-transaction`,
    /// `settled-transaction`, `transaction-record`, `pending-upload`.
    pub why: &'static str,
}

/// What `gc` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// What was removed or settled.
    pub items: Vec<GcItem>,
    /// Objects removed.
    pub objects: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Objects looked at.
    pub scanned: u64,
    /// Pending uploads aborted (their staged bytes are in `bytes`).
    pub pending_uploads: u64,
    /// Why pending uploads were not looked at, when the backend cannot list
    /// them.
    pub pending_unsupported: Option<String>,
}

impl GcReport {
    fn add(&mut self, path: String, bytes: u64, why: &'static str, object: bool) {
        if object {
            self.objects += 1;
            self.bytes += bytes;
        }
        self.items.push(GcItem { path, bytes, why });
    }
}

/// Reads and deletes in flight at once.
const PARALLEL: usize = 16;

/// Whether `path` is a `wharf.json` or an alias (what a transaction marks).
fn is_marker(path: &str) -> bool {
    path.ends_with(&format!("/{MANIFEST}")) || path.contains(&format!("/{ALIASES}/"))
}

fn modified(o: &ObjectMeta) -> Option<SystemTime> {
    o.modified_ms
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
}

/// The version-data prefix an object under `models/` belongs to, if it is
/// version data.
fn data_prefix_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("models/")?;
    let (model, rest) = rest.split_once('/')?;
    let id_start = if rest.starts_with(&format!("{UPLOADS}/")) {
        "models/".len() + model.len() + 1 + UPLOADS.len() + 1
    } else {
        let (version, _) = rest.split_once('/')?;
        if version.starts_with('_') {
            return None;
        }
        "models/".len() + model.len() + 1 + version.len() + 1
    };
    let tail = &path[id_start..];
    let (id, file) = tail.split_once('/')?;
    let ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !file.is_empty();
    ok.then(|| &path[..id_start + id.len()])
}

impl StorageService {
    /// Finishes and removes what crashed saves and transactions left; see
    /// the [module](self).
    pub async fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let at = |e: crate::Error| e.at(self.adapter.name(), "gc", None);
        let cutoff = SystemTime::now().checked_sub(opts.older_than).unwrap_or(UNIX_EPOCH);
        let old = |t: Option<SystemTime>| match t {
            Some(t) => t <= cutoff,
            None => opts.older_than.is_zero(),
        };
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..Default::default()
        };

        // 1. Records first, then the marks.
        let records: Vec<ObjectMeta> = self.list_all(&format!("{TX_DIR}/")).await.map_err(at)?;
        let listing = self.list_all("models/").await.map_err(at)?;
        report.scanned = (records.len() + listing.len()) as u64;
        let mut marks: BTreeMap<String, Vec<ObjectPath>> = BTreeMap::new();
        // Owned items and a cloned service per task: the future of `gc`
        // stays `Send` for callers that spawn it.
        let markers: Vec<String> = listing
            .iter()
            .filter(|o| is_marker(&o.path))
            .map(|o| o.path.clone())
            .collect();
        let marked: Vec<(String, Result<Option<String>>)> = stream::iter(markers)
            .map(|path| {
                let svc = self.clone();
                async move {
                    let mark = svc.mark_of(&path).await;
                    (path, mark)
                }
            })
            .buffered(PARALLEL)
            .collect()
            .await;
        for (path, mark) in marked {
            if let Some(id) = mark.map_err(at)? {
                marks.entry(id).or_default().push(ObjectPath::parse(&path).map_err(at)?);
            }
        }

        // 2. Settle, abandoning what is old and undecided.
        let mut unsettled = HashSet::new();
        for (id, touched) in &marks {
            let mut state = self.tx_state(id).await.map_err(at)?;
            let mut abandoned = false;
            if state == TxState::Pending {
                abandoned = true;
                if !old(tx_started(id)) {
                    unsettled.insert(id.clone());
                    continue;
                }
                if !opts.dry_run {
                    state = self.decide(id, TxState::Aborted, touched).await.map_err(at)?;
                }
                if state != TxState::Committed {
                    report.add(id.clone(), 0, "abandoned-transaction", false);
                }
            } else {
                report.add(id.clone(), 0, "settled-transaction", false);
            }
            if opts.dry_run {
                continue;
            }
            let state = if state == TxState::Pending {
                TxState::Aborted
            } else {
                state
            };
            // An abandoned transaction's record stays until a later run
            // finds it older than the grace period: its owner, if it is
            // still alive, must find `aborted` there when it commits (with
            // no grace period at all, running ones are fair game anyway;
            // their commit still finds its marks gone and fails).
            let settled = if abandoned && !opts.older_than.is_zero() {
                self.settle_all(id, state, touched).await
            } else {
                self.finish_tx(id, state, touched).await
            };
            if let Err(e) = settled {
                tracing::warn!("gc: settling transaction {id}: {e}");
                unsettled.insert(id.clone());
            }
        }

        // 3. Records whose marks are settled.
        for r in &records {
            let id = &r.path[TX_DIR.len() + 1..];
            if !is_tx_id(id) || unsettled.contains(id) || marks.contains_key(id) || !old(modified(r)) {
                // Marked ones were removed by finish_tx (or are kept, when
                // abandoned just now); foreign names stay.
                continue;
            }
            if !opts.dry_run {
                self.adapter
                    .delete(&ObjectPath::parse(&r.path).map_err(at)?)
                    .await
                    .map_err(at)?;
            }
            report.add(r.path.clone(), r.size, "transaction-record", true);
        }

        // 4. Data no manifest names, from a listing taken after settling.
        let listing = if opts.dry_run || marks.is_empty() {
            listing
        } else {
            self.list_all("models/").await.map_err(at)?
        };
        let mut named = HashSet::new();
        let mut guarded_dirs = Vec::new();
        let bases = listing
            .iter()
            .filter_map(|o| o.path.strip_suffix(&format!("/{MANIFEST}")))
            .map(ObjectPath::parse)
            .collect::<Result<Vec<_>>>()
            .map_err(at)?;
        let slots: Vec<(ObjectPath, Result<Option<_>>)> = stream::iter(bases)
            .map(|base| {
                let svc = self.clone();
                async move {
                    let slot = svc.read_slot(&base).await;
                    (base, slot)
                }
            })
            .buffered(PARALLEL)
            .collect()
            .await;
        for (base, slot) in slots {
            match slot {
                Ok(Some((Slot::Manifest(m), _))) => {
                    named.insert(m.data_prefix(&base).map_err(at)?.to_string());
                }
                Ok(Some((Slot::Tombstone(t), _))) => {
                    if let Some(m) = t.previous {
                        named.insert(m.data_prefix(&base).map_err(at)?.to_string());
                    }
                }
                Ok(None) => {}
                // A manifest that does not check out protects its folder
                // (nothing is removed on a guess).
                Err(e) => {
                    tracing::warn!("gc: {e}; keeping what is under `{base}`");
                    guarded_dirs.push(format!("{base}/"));
                }
            }
        }
        let orphans: Vec<(String, u64)> = listing
            .iter()
            .filter(|o| {
                data_prefix_of(&o.path).is_some_and(|prefix| {
                    !named.contains(prefix) && !guarded_dirs.iter().any(|d| prefix.starts_with(d.as_str()))
                }) && old(modified(o))
            })
            .map(|o| (o.path.clone(), o.size))
            .collect();
        if !opts.dry_run {
            // Many small deletes: PARALLEL at a time, not one by one.
            let paths: Vec<String> = orphans.iter().map(|(p, _)| p.clone()).collect();
            let deleted: Vec<Result<()>> = stream::iter(paths)
                .map(|path| {
                    let adapter = self.adapter.clone();
                    async move {
                        match adapter.delete(&ObjectPath::parse(&path)?).await {
                            Err(e) if e.kind() != crate::ErrorKind::NotFound => Err(e),
                            _ => Ok(()),
                        }
                    }
                })
                .buffered(PARALLEL)
                .collect()
                .await;
            deleted.into_iter().collect::<Result<()>>().map_err(at)?;
        }
        for (path, size) in orphans {
            report.add(path, size, "orphaned-data", true);
        }

        // 5. Pending uploads older than the grace period.
        match self.pending_uploads("").await {
            Ok(uploads) => {
                let stale: Vec<_> = uploads
                    .into_iter()
                    .filter(|u| {
                        old(u
                            .started_ms
                            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms))))
                    })
                    .collect();
                if !opts.dry_run {
                    let aborted: Vec<Result<()>> = stream::iter(stale.clone())
                        .map(|u| {
                            let svc = self.clone();
                            async move { svc.abort_pending(&u).await }
                        })
                        .buffered(PARALLEL)
                        .collect()
                        .await;
                    aborted.into_iter().collect::<Result<()>>().map_err(at)?;
                }
                for u in stale {
                    let bytes = u.staged_bytes.unwrap_or(0);
                    report.pending_uploads += 1;
                    report.bytes += bytes;
                    report.items.push(GcItem {
                        path: u.path,
                        bytes,
                        why: "pending-upload",
                    });
                }
            }
            Err(e) if e.kind() == crate::ErrorKind::Unsupported => {
                report.pending_unsupported = Some(e.to_string());
            }
            Err(e) => return Err(at(e)),
        }
        Ok(report)
    }

    /// The transaction marking the object at `path` (a `wharf.json` or an
    /// alias), if any.
    async fn mark_of(&self, path: &str) -> Result<Option<String>> {
        if let Some(base) = path.strip_suffix(&format!("/{MANIFEST}")) {
            return Ok(match self.read_slot(&ObjectPath::parse(base)?).await {
                Ok(Some((Slot::Manifest(m), _))) => m.tx,
                Ok(Some((Slot::Tombstone(t), _))) => t.tx,
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!("gc: {e}");
                    None
                }
            });
        }
        let Some(rest) = path.strip_prefix("models/") else {
            return Ok(None);
        };
        let Some((model, alias)) = rest.split_once(&format!("/{ALIASES}/")) else {
            return Ok(None);
        };
        if model.contains('/') || alias.contains('/') {
            return Ok(None);
        }
        Ok(match self.read_alias(model, alias).await {
            Ok(Some((r, _))) => r.tx,
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_prefixes() {
        let id = "0123456789abcdef";
        assert_eq!(
            data_prefix_of(&format!("models/m/_wharf/uploads/{id}/model.pkl")),
            Some(format!("models/m/_wharf/uploads/{id}").as_str())
        );
        assert_eq!(
            data_prefix_of(&format!("models/m/v1/{id}/dir/a.bin")),
            Some(format!("models/m/v1/{id}").as_str())
        );
        for p in [
            "models/m/1/wharf.json",
            "models/m/_wharf/aliases/prod",
            "models/m/v1/notanid/x",
            "other/m/v1/0123456789abcdef/x",
            "models/m/_wharf/uploads/0123456789abcdef",
        ] {
            assert_eq!(data_prefix_of(p), None, "{p}");
        }
    }
}
