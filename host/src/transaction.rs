//! `StorageTransaction`: saves, deletes and alias moves that become visible
//! together, or not at all.
//!
//! Every object a transaction changes is marked with its id while it runs:
//! a saved version's `wharf.json` names it, a delete leaves a tombstone
//! that keeps the version (`previous`) and names it, a moved alias keeps
//! its old target (`previous`) and names it. Readers treat a marked object
//! by its transaction's outcome, and the outcome is one object,
//! `_wharf/tx/<id>`, created once and create-only (the way Delta Lake's log
//! entries and Iceberg's metadata pointer commit on object stores): by the
//! commit (`committed`), by a rollback, or by `wharf gc` abandoning a
//! transaction older than its grace period (`aborted`). Whoever creates it
//! first decides; no record means still running, so invisible. Afterwards
//! the marked objects are settled (the mark dropped, or the change undone),
//! and the record is removed once nothing names it; a crash in between only
//! leaves work that `wharf gc` finishes, never a different outcome.
//!
//! Conflicts are found when an object is marked: a version, tombstone or
//! alias already marked by another running transaction, or changed since
//! it was read (compare-and-swap), fails with `precondition-failed`, and so
//! does a commit that would leave an alias naming a deleted version.

use crate::adapter::PutMode;
use crate::error::{Error, ErrorKind, Result};
use crate::model::ModelStorageInfo;
use crate::path::ObjectPath;
use crate::registry::{ALIASES, AliasRecord, TxCache, TxRecord, TxState, new_tx_id, numbered, tx_record_path};
use crate::service::{MANIFEST, SaveOptions, Slot, StorageService, Tombstone, Visible};
use std::path::Path;
use tokio::io::AsyncRead;

/// A set of saves, deletes and alias moves on one backend that commit
/// together. See the [module](self) for how.
///
/// ```no_run
/// # async fn f(service: wharf::StorageService) -> wharf::Result<()> {
/// let mut tx = service.transaction()?;
/// let info = tx.save_file("model.onnx".as_ref(), &wharf::SaveOptions {
///     model: Some("detector".into()),
///     ..Default::default()
/// }).await?;
/// tx.set_alias("detector", "production", info.version.as_deref().unwrap()).await?;
/// tx.commit().await?; // both at once, or neither
/// # Ok(()) }
/// ```
pub struct Transaction {
    /// The service, saving with this transaction's mark.
    service: StorageService,
    id: String,
    /// The objects marked so far.
    touched: Vec<ObjectPath>,
    /// Versions deleted: (model, version).
    deleted: Vec<(String, String)>,
    /// Aliases moved: (model, alias, version).
    moved: Vec<(String, String, String)>,
    finished: bool,
}

impl StorageService {
    /// Starts a transaction. Fails with `unsupported` on a backend without
    /// atomic create and compare-and-swap (mlflow's artifact store), where
    /// no commit could be made atomic.
    pub fn transaction(&self) -> Result<Transaction> {
        let caps = self.adapter.capabilities();
        if !(caps.write_create && caps.write_update) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "transactions need atomic create and compare-and-swap (create-only and if-match writes), which this backend does not have",
            )
            .at(self.adapter.name(), "transaction", None));
        }
        let id = new_tx_id();
        let mut service = self.clone();
        service.tx = Some(id.clone());
        Ok(Transaction {
            service,
            id,
            touched: Vec::new(),
            deleted: Vec::new(),
            moved: Vec::new(),
            finished: false,
        })
    }

    /// Brings the object at `path` (a `wharf.json` or an alias) marked by
    /// transaction `id` to what `state` decided, and drops the mark. An
    /// object not (or no longer) marked by `id` is left alone, so settling
    /// twice, or concurrently with `gc`, is harmless.
    pub(crate) async fn settle(&self, path: &ObjectPath, id: &str, state: TxState) -> Result<()> {
        debug_assert!(state != TxState::Pending);
        let committed = state == TxState::Committed;
        if let Some(base) = path.as_str().strip_suffix(&format!("/{MANIFEST}")) {
            let base = ObjectPath::parse(base)?;
            let Some((slot, etag)) = self.read_slot_at(&base, true).await? else {
                return Ok(());
            };
            let is_numbered = numbered(base.as_str()).is_some();
            match slot {
                Slot::Manifest(mut m) if m.tx.as_deref() == Some(id) => {
                    if committed {
                        m.tx = None;
                        self.swap_slot(path, &json(&m), etag).await?;
                    } else {
                        if is_numbered {
                            self.swap_slot(path, &json(&tombstone(None, None)), etag).await?;
                        } else {
                            self.adapter.delete(path).await?;
                        }
                        self.delete_files(&base, &m).await?;
                    }
                }
                Slot::Tombstone(t) if t.tx.as_deref() == Some(id) => match (committed, t.previous) {
                    (true, previous) => {
                        if is_numbered {
                            self.swap_slot(path, &json(&tombstone(None, None)), etag).await?;
                        } else {
                            self.adapter.delete(path).await?;
                        }
                        if let Some(m) = previous {
                            self.delete_files(&base, &m).await?;
                        }
                    }
                    (false, Some(m)) => self.swap_slot(path, &json(&*m), etag).await?,
                    (false, None) => self.swap_slot(path, &json(&tombstone(None, None)), etag).await?,
                },
                _ => {}
            }
            return Ok(());
        }
        let (model, alias) = alias_of(path)?;
        let Some((r, etag)) = self.read_alias(&model, &alias).await? else {
            return Ok(());
        };
        if r.tx.as_deref() != Some(id) {
            return Ok(());
        }
        let settled = if committed { Some(r.version) } else { r.previous };
        match settled {
            Some(version) => {
                let record = AliasRecord {
                    version,
                    tx: None,
                    previous: None,
                };
                self.write_alias(&model, &alias, &record, etag).await
            }
            None => self.adapter.delete(path).await,
        }
    }

    /// Deletes the files of version `m` at `base`.
    pub(crate) async fn delete_files(&self, base: &ObjectPath, m: &crate::service::Manifest) -> Result<()> {
        let data = m.data_prefix(base)?;
        for f in &m.info.files {
            self.adapter.delete(&data.join(&f.path)?).await?;
        }
        Ok(())
    }

    /// Settles every object in `touched`.
    pub(crate) async fn settle_all(&self, id: &str, state: TxState, touched: &[ObjectPath]) -> Result<()> {
        for p in touched {
            self.settle(p, id, state).await?;
        }
        Ok(())
    }

    /// Whether the object at `path` is still marked by transaction `id`.
    async fn marked_by(&self, path: &ObjectPath, id: &str) -> Result<bool> {
        if let Some(base) = path.as_str().strip_suffix(&format!("/{MANIFEST}")) {
            return Ok(match self.read_slot(&ObjectPath::parse(base)?).await? {
                Some((Slot::Manifest(m), _)) => m.tx.as_deref() == Some(id),
                Some((Slot::Tombstone(t), _)) => t.tx.as_deref() == Some(id),
                None => false,
            });
        }
        let (model, alias) = alias_of(path)?;
        Ok(self
            .read_alias(&model, &alias)
            .await?
            .is_some_and(|(r, _)| r.tx.as_deref() == Some(id)))
    }

    /// Decides transaction `id`'s outcome by creating its record; returns
    /// the outcome that holds (another party's, if it was first).
    pub(crate) async fn decide(&self, id: &str, state: TxState, touched: &[ObjectPath]) -> Result<TxState> {
        let record = TxRecord {
            state,
            at: crate::registry::now(),
            touched: touched.iter().map(|p| p.to_string()).collect(),
        };
        let bytes = serde_json::to_vec(&record).expect("a record serializes");
        let path = tx_record_path(id)?;
        match self.put_small(&path, PutMode::Create, bytes).await {
            Ok(_) => Ok(state),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => self.tx_state(id).await,
            Err(e) => Err(e),
        }
    }

    /// Settles every object a decided transaction marked, then removes its
    /// record. Failures are left for `wharf gc` (the outcome is decided
    /// already) and reported.
    pub(crate) async fn finish_tx(&self, id: &str, state: TxState, touched: &[ObjectPath]) -> Result<()> {
        self.settle_all(id, state, touched).await?;
        match self.adapter.delete(&tx_record_path(id)?).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("serializes")
}

fn tombstone(tx: Option<String>, previous: Option<crate::service::Manifest>) -> Tombstone {
    Tombstone {
        wharf_tombstone: 1,
        deleted_at: crate::registry::now(),
        tx,
        previous: previous.map(Box::new),
    }
}

/// `(model, alias)` of an alias object's path.
pub(crate) fn alias_of(path: &ObjectPath) -> Result<(String, String)> {
    let p = path.as_str();
    let bad = || {
        Error::new(
            ErrorKind::Integrity,
            format!("`{p}` is neither a manifest nor an alias"),
        )
    };
    let rest = p.strip_prefix("models/").ok_or_else(bad)?;
    let (model, alias) = rest.split_once(&format!("/{ALIASES}/")).ok_or_else(bad)?;
    Ok((model.to_string(), alias.to_string()))
}

fn conflict(msg: String) -> Error {
    Error::new(ErrorKind::PreconditionFailed, msg)
}

impl Transaction {
    /// This transaction's id (it names the transaction in errors and in
    /// `_wharf/tx/`).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn at(&self, op: &'static str, path: &str) -> impl Fn(Error) -> Error + use<> {
        let (backend, path) = (self.service.adapter.name().to_string(), path.to_string());
        move |e| e.at(&backend, op, Some(&path))
    }

    fn saved(&mut self, info: &ModelStorageInfo) -> Result<()> {
        self.touched
            .push(ObjectPath::parse(&info.storage_path)?.join(MANIFEST)?);
        Ok(())
    }

    /// Saves one file as part of the transaction (see
    /// [`StorageService::save_file`]); invisible until the commit. A
    /// numbered version gets its number now.
    pub async fn save_file(&mut self, file: &Path, opts: &SaveOptions) -> Result<ModelStorageInfo> {
        let info = self.service.save_file(file, opts).await?;
        self.saved(&info)?;
        Ok(info)
    }

    /// Saves a folder as part of the transaction (see
    /// [`StorageService::save_dir`]).
    pub async fn save_dir(&mut self, dir: &Path, opts: &SaveOptions) -> Result<ModelStorageInfo> {
        let info = self.service.save_dir(dir, opts).await?;
        self.saved(&info)?;
        Ok(info)
    }

    /// Saves a stream as part of the transaction (see
    /// [`StorageService::save_stream`]).
    pub async fn save_stream(
        &mut self,
        name: &str,
        reader: impl AsyncRead + Unpin + Send + 'static,
        opts: &SaveOptions,
    ) -> Result<ModelStorageInfo> {
        let info = self.service.save_stream(name, reader, opts).await?;
        self.saved(&info)?;
        Ok(info)
    }

    /// Deletes a version (a storage path or a reference) when the
    /// transaction commits. Returns whether it existed.
    pub async fn delete(&mut self, reference: &str) -> Result<bool> {
        let svc = &self.service;
        let path = match svc.resolve(reference).await {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let at = self.at("delete", reference);
        let base = ObjectPath::parse(&path).map_err(&at)?;
        let Some((slot, etag)) = svc.read_slot_at(&base, true).await.map_err(&at)? else {
            return Ok(false);
        };
        let marked = match &slot {
            Slot::Manifest(m) => m.tx.clone(),
            Slot::Tombstone(t) => t.tx.clone(),
        };
        if marked.as_deref() == Some(self.id.as_str()) {
            return Err(at(Error::invalid(format!(
                "`{path}` was saved or deleted by this transaction already"
            ))));
        }
        if let Some(other) = &marked
            && svc.tx_state(other).await.map_err(&at)? == TxState::Pending
        {
            return Err(at(conflict(format!(
                "`{path}` is being changed by transaction {other}"
            ))));
        }
        let m = match svc.visible(slot, &mut TxCache::default()).await.map_err(&at)? {
            Visible::Yes(m) => m,
            _ => return Ok(false),
        };
        let manifest_path = base.join(MANIFEST).map_err(&at)?;
        svc.swap_slot(&manifest_path, &json(&tombstone(Some(self.id.clone()), Some(m))), etag)
            .await
            .map_err(&at)?;
        self.touched.push(manifest_path);
        let (model, version) = path.rsplit_once('/').unwrap_or(("", &path));
        if let Some(model) = model.strip_prefix("models/") {
            self.deleted.push((model.to_string(), version.to_string()));
        }
        Ok(true)
    }

    /// Points `MODEL@ALIAS` at `version` when the transaction commits. The
    /// version may be one this transaction saved.
    pub async fn set_alias(&mut self, model: &str, alias: &str, version: &str) -> Result<()> {
        let name = format!("{model}@{alias}");
        let at = self.at("alias", &name);
        let svc = &self.service;
        let path = StorageService::alias_path(model, alias).map_err(&at)?;
        let base = ObjectPath::parse(&format!("models/{model}"))
            .map_err(&at)?
            .join(version)
            .map_err(&at)?;
        let ours = matches!(
            svc.read_slot(&base).await.map_err(&at)?,
            Some((Slot::Manifest(m), _)) if m.tx.as_deref() == Some(self.id.as_str())
        );
        if !ours && !svc.exists(base.as_str()).await.map_err(&at)? {
            return Err(at(Error::new(
                ErrorKind::NotFound,
                format!("model `{model}` has no version `{version}`"),
            )));
        }
        let (previous, etag) = match svc.read_alias(model, alias).await.map_err(&at)? {
            Some((r, etag)) => match &r.tx {
                Some(id) if id == &self.id => (r.previous.clone(), etag),
                Some(id) if svc.tx_state(id).await.map_err(&at)? == TxState::Pending => {
                    return Err(at(conflict(format!(
                        "alias `{name}` is being moved by transaction {id}"
                    ))));
                }
                _ => (svc.alias_target(&r, &mut TxCache::default()).await.map_err(&at)?, etag),
            },
            None => (None, None),
        };
        let record = AliasRecord {
            version: version.to_string(),
            tx: Some(self.id.clone()),
            previous,
        };
        svc.write_alias(model, alias, &record, etag).await.map_err(&at)?;
        if !self.touched.contains(&path) {
            self.touched.push(path);
        }
        self.moved.retain(|(m, a, _)| !(m == model && a == alias));
        self.moved
            .push((model.to_string(), alias.to_string(), version.to_string()));
        Ok(())
    }

    /// What would be wrong with committing now: an alias left naming a
    /// version this transaction deletes, or a version an alias is moved to
    /// that someone else is deleting.
    async fn check(&self) -> Result<()> {
        let svc = &self.service;
        for (model, version) in &self.deleted {
            let dir = format!("models/{model}/{ALIASES}/");
            for o in svc.list_all(&dir).await? {
                let alias = &o.path[dir.len()..];
                let Ok(Some((r, _))) = svc.read_alias(model, alias).await else {
                    continue;
                };
                let after = match &r.tx {
                    Some(id) if id == &self.id => Some(r.version.clone()),
                    Some(id) if svc.tx_state(id).await? == TxState::Pending => {
                        if r.version == *version || r.previous.as_deref() == Some(version) {
                            return Err(conflict(format!(
                                "alias `{model}@{alias}` is being moved by transaction {id} to or from version `{version}`, which this transaction deletes"
                            )));
                        }
                        continue;
                    }
                    _ => svc.alias_target(&r, &mut TxCache::default()).await?,
                };
                if after.as_deref() == Some(version) {
                    return Err(conflict(format!(
                        "alias `{model}@{alias}` would name version `{version}`, which this transaction deletes; move or remove the alias first"
                    )));
                }
            }
        }
        for (model, alias, version) in &self.moved {
            let base = ObjectPath::parse(&format!("models/{model}"))?.join(version)?;
            match svc.read_slot(&base).await? {
                Some((Slot::Manifest(m), _)) if m.tx.is_none() || m.tx.as_deref() == Some(self.id.as_str()) => {}
                Some((Slot::Manifest(m), _))
                    if svc.tx_state(m.tx.as_deref().unwrap_or_default()).await? == TxState::Committed => {}
                _ => {
                    return Err(conflict(format!(
                        "alias `{model}@{alias}` would name version `{version}`, which is deleted or being deleted"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Makes all of the transaction visible at once. On a conflict nothing
    /// of it becomes visible, it is rolled back, and the error names what
    /// conflicted.
    pub async fn commit(mut self) -> Result<()> {
        self.finished = true;
        let svc = self.service.clone();
        let at = |e: Error| e.at(svc.adapter.name(), "commit", Some(&self.id));
        if self.touched.is_empty() {
            return Ok(());
        }
        // Every mark must still be there: `wharf gc` settles the marks of a
        // transaction it abandoned (and keeps its `aborted` record a grace
        // period longer, which `decide` below finds).
        for p in &self.touched {
            if !svc.marked_by(p, &self.id).await.map_err(at)? {
                return Err(at(conflict(format!(
                    "transaction {} was abandoned (by `wharf gc`, after its grace period) before it committed: `{p}` no longer carries it; none of it is visible",
                    self.id
                ))));
            }
        }
        if let Err(e) = self.check().await {
            self.undo().await;
            return Err(at(e));
        }
        match svc
            .decide(&self.id, TxState::Committed, &self.touched)
            .await
            .map_err(at)?
        {
            TxState::Committed => {}
            _ => {
                return Err(at(conflict(format!(
                    "transaction {} was abandoned (by `wharf gc`, after its grace period) before it committed; none of it is visible",
                    self.id
                ))));
            }
        }
        if let Err(e) = svc.finish_tx(&self.id, TxState::Committed, &self.touched).await {
            tracing::warn!(
                "transaction {} committed; settling it failed, `wharf gc` finishes it: {e}",
                self.id
            );
        }
        Ok(())
    }

    /// Drops all of the transaction: none of it ever becomes visible.
    pub async fn rollback(mut self) -> Result<()> {
        self.finished = true;
        let svc = self.service.clone();
        match svc.decide(&self.id, TxState::Aborted, &self.touched).await {
            Ok(TxState::Committed) => Err(Error::invalid(format!("transaction {} committed already", self.id))),
            Ok(_) => {
                svc.finish_tx(&self.id, TxState::Aborted, &self.touched).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
        .map_err(|e| e.at(svc.adapter.name(), "rollback", Some(&self.id)))
    }

    async fn undo(&self) {
        let svc = &self.service;
        match svc.decide(&self.id, TxState::Aborted, &self.touched).await {
            Ok(TxState::Aborted) => {
                if let Err(e) = svc.finish_tx(&self.id, TxState::Aborted, &self.touched).await {
                    tracing::warn!("rolling back transaction {}: {e}; `wharf gc` finishes it", self.id);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("rolling back transaction {}: {e}; `wharf gc` finishes it", self.id),
        }
    }
}

impl Drop for Transaction {
    /// A transaction dropped without `commit` or `rollback` is rolled back
    /// in the background where a runtime is running; if none is (or the
    /// process ends first), it stays invisible and `wharf gc` removes it
    /// after its grace period.
    fn drop(&mut self) {
        if self.finished || self.touched.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let tx = Transaction {
                service: self.service.clone(),
                id: self.id.clone(),
                touched: std::mem::take(&mut self.touched),
                deleted: Vec::new(),
                moved: Vec::new(),
                finished: true,
            };
            handle.spawn(async move { tx.undo().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::GcOptions;
    use crate::{InMemory, StorageService};
    use std::sync::Arc;
    use std::time::Duration;

    fn service() -> StorageService {
        StorageService::new(Arc::new(InMemory::new()))
    }

    fn model(m: &str) -> SaveOptions {
        SaveOptions {
            model: Some(m.into()),
            ..Default::default()
        }
    }

    async fn save(s: &StorageService, m: &str, bytes: &'static [u8]) -> ModelStorageInfo {
        s.save_stream("m.bin", bytes, &model(m)).await.unwrap()
    }

    fn versions(v: &[crate::VersionEntry]) -> Vec<&str> {
        v.iter().map(|e| e.version.as_str()).collect()
    }

    /// Every object under `prefix`.
    async fn objects(s: &StorageService, prefix: &str) -> Vec<String> {
        s.list_all(prefix).await.unwrap().into_iter().map(|o| o.path).collect()
    }

    #[tokio::test]
    async fn nothing_is_visible_before_commit_and_all_of_it_after() {
        let s = service();
        save(&s, "det", b"one").await;
        s.set_alias("det", "prod", "1").await.unwrap();
        let mut tx = s.transaction().unwrap();
        let a = tx.save_stream("m.bin", &b"two"[..], &model("det")).await.unwrap();
        let b = tx.save_stream("m.bin", &b"other"[..], &model("aux")).await.unwrap();
        assert_eq!(a.version.as_deref(), Some("2"));
        tx.set_alias("det", "prod", "2").await.unwrap();
        // Before: the old state, everywhere a reader looks.
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1"]);
        assert!(s.versions("aux").await.unwrap().is_empty());
        assert_eq!(s.alias("det", "prod").await.unwrap().as_deref(), Some("1"));
        assert_eq!(s.latest("det").await.unwrap(), Some(1));
        assert_eq!(s.info(&a.storage_path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(s.info("det@prod").await.unwrap().checksum, save_sum(b"one"));
        // Another transaction, or a plain move, cannot touch the alias now.
        let mut other = s.transaction().unwrap();
        let e = other.set_alias("det", "prod", "1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
        assert!(e.to_string().contains(tx.id()), "{e}");
        assert_eq!(
            s.set_alias("det", "prod", "1").await.unwrap_err().kind(),
            ErrorKind::PreconditionFailed
        );
        drop(other);
        tx.commit().await.unwrap();
        // After: all of it, and no mark or record left.
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1", "2"]);
        assert_eq!(s.info(&b.storage_path).await.unwrap().checksum, save_sum(b"other"));
        assert_eq!(s.alias("det", "prod").await.unwrap().as_deref(), Some("2"));
        assert!(objects(&s, "_wharf/tx/").await.is_empty());
        let raw = s
            .read_small(&ObjectPath::parse("models/det/2/wharf.json").unwrap(), 1 << 20)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("\"tx\""));
    }

    fn save_sum(b: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let file = hex::encode(Sha256::digest(b));
        ModelStorageInfo::checksum_of(
            &[crate::StoredFile {
                path: "m.bin".into(),
                size_bytes: b.len() as u64,
                checksum: file,
                stored_size_bytes: None,
                executable: false,
            }],
            &[],
            false,
        )
    }

    #[tokio::test]
    async fn rollback_and_drop_leave_nothing_and_numbers_are_not_reused() {
        let s = service();
        save(&s, "det", b"one").await;
        let mut tx = s.transaction().unwrap();
        tx.save_stream("m.bin", &b"two"[..], &model("det")).await.unwrap();
        tx.set_alias("det", "prod", "1").await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1"]);
        assert!(s.aliases("det").await.unwrap().is_empty());
        // The rolled-back number stays taken; its files are gone.
        assert_eq!(save(&s, "det", b"three").await.version.as_deref(), Some("3"));
        assert!(objects(&s, "_wharf/tx/").await.is_empty());
        let uploads = objects(&s, "models/det/_wharf/uploads/").await;
        assert_eq!(uploads.len(), 2, "{uploads:?}");

        let mut tx = s.transaction().unwrap();
        tx.delete("det@3").await.unwrap();
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1", "3"]);
        drop(tx); // rolled back in the background
        for _ in 0..100 {
            if objects(&s, "_wharf/tx/").await.is_empty()
                && !String::from_utf8_lossy(
                    &s.read_small(&ObjectPath::parse("models/det/3/wharf.json").unwrap(), 1 << 20)
                        .await
                        .unwrap(),
                )
                .contains("tombstone")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1", "3"]);
        assert!(s.delete("det@3").await.unwrap(), "no mark left to block it");
    }

    #[tokio::test]
    async fn a_commit_that_would_leave_an_alias_on_a_deleted_version_fails_whole() {
        let s = service();
        save(&s, "det", b"one").await;
        save(&s, "det", b"two").await;
        s.set_alias("det", "prod", "2").await.unwrap();
        let mut tx = s.transaction().unwrap();
        tx.save_stream("m.bin", &b"three"[..], &model("det")).await.unwrap();
        tx.delete("det@1").await.unwrap();
        tx.delete("det@2").await.unwrap();
        let e = tx.commit().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
        assert!(e.to_string().contains("det@prod"), "{e}");
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1", "2"]);
        assert_eq!(s.alias("det", "prod").await.unwrap().as_deref(), Some("2"));
        // A plain alias move onto a version a running transaction deletes
        // is refused too, and undone.
        let mut tx = s.transaction().unwrap();
        tx.delete("det@1").await.unwrap();
        assert_eq!(
            s.set_alias("det", "staging", "1").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(s.alias("det", "staging").await.unwrap().is_none());
        tx.commit().await.unwrap();
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["2"]);
    }

    #[tokio::test]
    async fn gc_abandons_old_transactions_and_finishes_decided_ones() {
        let s = service();
        save(&s, "det", b"one").await;
        // A process that died mid-transaction: marks, no record.
        let mut dead = s.transaction().unwrap();
        dead.save_stream("m.bin", &b"lost"[..], &model("det")).await.unwrap();
        dead.set_alias("det", "prod", "1").await.unwrap();
        // A young one is left alone.
        let report = s.gc(&GcOptions::default()).await.unwrap();
        assert_eq!(report.objects, 0, "{report:?}");
        let report = s
            .gc(&GcOptions {
                older_than: Duration::ZERO,
                dry_run: false,
            })
            .await
            .unwrap();
        assert!(
            report
                .items
                .iter()
                .any(|i| i.why == "abandoned-transaction" && i.path == dead.id()),
            "{report:?}"
        );
        // Its owner comes back too late: told, and nothing is visible.
        let e = dead.commit().await.unwrap_err();
        assert!(e.to_string().contains("abandoned"), "{e}");
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1"]);
        assert!(s.aliases("det").await.unwrap().is_empty());

        // A process that died right after its commit record: visible at
        // once; gc drops the marks and the record.
        let mut tx = s.transaction().unwrap();
        tx.save_stream("m.bin", &b"kept"[..], &model("det")).await.unwrap();
        let touched = std::mem::take(&mut tx.touched);
        s.decide(tx.id(), TxState::Committed, &touched).await.unwrap();
        tx.finished = true;
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1", "3"]);
        let report = s
            .gc(&GcOptions {
                older_than: Duration::ZERO,
                dry_run: false,
            })
            .await
            .unwrap();
        assert!(
            report.items.iter().any(|i| i.why == "settled-transaction"),
            "{report:?}"
        );
        assert!(objects(&s, "_wharf/tx/").await.is_empty());
        assert_eq!(versions(&s.versions("det").await.unwrap()), ["1", "3"]);
        // Nothing unreferenced is left: one upload per live version.
        let uploads = objects(&s, "models/det/_wharf/uploads/").await;
        assert_eq!(uploads.len(), 2, "{uploads:?}");
    }
}
