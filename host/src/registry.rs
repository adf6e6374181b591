//! The model registry on [`StorageService`]: numbered versions, aliases,
//! references (`MODEL@3`, `MODEL@latest`, `MODEL@production`) and the
//! rules deletes follow. Transactions are in [`crate::transaction`],
//! garbage collection in [`crate::gc`].
//!
//! Everything is built on two atomic operations every registry backend
//! has, create-only puts and compare-and-swap on an etag; no lock, no
//! server. Layout under `models/<MODEL>/`:
//! - `<N>/wharf.json`: version N's manifest. Numbers are claimed by
//!   creating it (create-only), after the files are uploaded, so N hosts
//!   saving at once get N distinct numbers and a failed save claims none.
//!   A deleted numbered version leaves a tombstone there, so its number is
//!   never handed out again.
//! - `_wharf/uploads/<id>/...`: a numbered version's files (the number is
//!   only known once the manifest is committed).
//! - `<NAME>/<id>/...`: the files of a version saved under a name it was
//!   given.
//! - `_wharf/aliases/<ALIAS>`: `{"version": "3"}`, moved by
//!   compare-and-swap.

use crate::adapter::PutMode;
use crate::error::{Error, ErrorKind, Result};
use crate::model::SerializationFormat;
use crate::path::ObjectPath;
use crate::service::{MANIFEST, Manifest, SaveOptions, Slot, StorageService, Tombstone, Visible};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Where models live.
pub const MODELS: &str = "models";
/// A numbered version's files, under its model.
pub(crate) const UPLOADS: &str = "_wharf/uploads";
/// A model's aliases, under its model.
pub(crate) const ALIASES: &str = "_wharf/aliases";
/// Transaction records, at the root.
pub(crate) const TX_DIR: &str = "_wharf/tx";
/// The largest alias or transaction record read.
pub(crate) const MAX_RECORD: u64 = 16 << 20;

/// What a reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A storage path as it is.
    Path(String),
    /// `MODEL@N`.
    Version(String, u64),
    /// `MODEL@latest`: the highest visible numbered version.
    Latest(String),
    /// `MODEL@ALIAS`.
    Alias(String, String),
}

impl Reference {
    /// Reads `MODEL@SELECTOR`; anything with a `/` or without `@` is a
    /// storage path.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((model, sel)) = s.rsplit_once('@').filter(|_| !s.contains('/')) else {
            return Ok(Reference::Path(s.to_string()));
        };
        check_model_name(model)?;
        if sel == "latest" {
            return Ok(Reference::Latest(model.into()));
        }
        if !sel.is_empty() && sel.bytes().all(|b| b.is_ascii_digit()) {
            let n = sel
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::invalid(format!("`{s}`: versions are numbered from 1")))?;
            return Ok(Reference::Version(model.into(), n));
        }
        check_alias_name(sel)?;
        Ok(Reference::Alias(model.into(), sel.into()))
    }
}

/// A model name: one path segment, not starting with `_` or `.` (wharf's
/// own), without `@` (references).
pub fn check_model_name(m: &str) -> Result<()> {
    let ok = !m.is_empty()
        && m.len() <= 200
        && !m.starts_with(['_', '.'])
        && !m.contains(['/', '@'])
        && ObjectPath::parse(m).is_ok();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "model name {m:?} must be one path segment without `@`, not starting with `_` or `.`"
        )))
    }
}

/// An alias: 1-64 of `a-z A-Z 0-9 _ - .`, not all digits (those are
/// versions) and not `latest`.
pub fn check_alias_name(a: &str) -> Result<()> {
    let ok = (1..=64).contains(&a.len())
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !a.bytes().all(|b| b.is_ascii_digit())
        && !a.starts_with('.')
        && a != "latest";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "alias {a:?} must be 1-64 of a-z, A-Z, 0-9, `_`, `-`, `.`, not all digits and not `latest`"
        )))
    }
}

fn model_prefix(model: &str) -> Result<ObjectPath> {
    check_model_name(model)?;
    ObjectPath::parse(&format!("{MODELS}/{model}"))
}

fn version_base(model: &str, n: u64) -> Result<ObjectPath> {
    model_prefix(model)?.join(&n.to_string())
}

/// `(model, number)` when `base` is a numbered version's storage path.
pub(crate) fn numbered(base: &str) -> Option<(&str, u64)> {
    let rest = base.strip_prefix("models/")?;
    let (model, v) = rest.split_once('/')?;
    if v.contains('/') || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((model, v.parse().ok()?))
}

/// A transaction's outcome, as its record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// No record yet: still running, or abandoned.
    Pending,
    /// Committed: all of it is visible.
    Committed,
    /// Rolled back or abandoned: none of it is visible.
    Aborted,
}

/// A transaction's record, `_wharf/tx/<id>`: created once, create-only, by
/// whoever decides its outcome first (its commit, its rollback, or `gc`
/// abandoning it).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TxRecord {
    pub state: TxState,
    pub at: String,
    /// The objects the transaction marked (`wharf.json`s and aliases), to
    /// settle after the outcome.
    #[serde(default)]
    pub touched: Vec<String>,
}

/// A new transaction id: the start time (milliseconds since the epoch, 16
/// hex digits, so `gc` knows its age without another object) and 64
/// random bits.
pub(crate) fn new_tx_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{ms:016x}-{:016x}", crate::runtime::rand_u64())
}

/// Whether `id` is one [`new_tx_id`] makes (ids come back from storage and
/// become object paths).
pub(crate) fn is_tx_id(id: &str) -> bool {
    id.len() == 33
        && id.bytes().enumerate().all(|(i, b)| {
            if i == 16 {
                b == b'-'
            } else {
                b.is_ascii_hexdigit() && !b.is_ascii_uppercase()
            }
        })
}

/// When a transaction started, from its id.
pub(crate) fn tx_started(id: &str) -> Option<std::time::SystemTime> {
    let ms = u64::from_str_radix(id.get(..16)?, 16).ok()?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms))
}

pub(crate) fn tx_record_path(id: &str) -> Result<ObjectPath> {
    if !is_tx_id(id) {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!("transaction id {id:?} is not one wharf writes"),
        ));
    }
    ObjectPath::parse(&format!("{TX_DIR}/{id}"))
}

/// Transaction states looked up once per call, so one listing sees each
/// transaction in one state.
#[derive(Default)]
pub(crate) struct TxCache(HashMap<String, TxState>);

impl TxCache {
    pub(crate) async fn state(&mut self, service: &StorageService, id: &str) -> Result<TxState> {
        if let Some(s) = self.0.get(id) {
            return Ok(*s);
        }
        let s = service.tx_state(id).await?;
        self.0.insert(id.to_string(), s);
        Ok(s)
    }
}

/// An alias object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AliasRecord {
    /// The version it names (once `tx`, if any, has committed).
    pub version: String,
    /// The transaction moving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    /// What it named before `tx`; `None`: it did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// One version, as `versions` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionEntry {
    /// The version (a number, or the name it was saved under).
    pub version: String,
    /// Its storage path.
    pub storage_path: String,
    /// When it was saved.
    pub created_at: String,
    /// Total size of its files.
    pub size_bytes: u64,
    /// Its format.
    pub format: SerializationFormat,
    /// The aliases naming it.
    pub aliases: Vec<String>,
}

/// Where a save goes.
pub(crate) struct SaveTarget {
    /// The options, with a default version filled in where one was chosen.
    pub opts: SaveOptions,
    /// Where the manifest goes (for a numbered save, a placeholder until
    /// the number is claimed).
    pub base: ObjectPath,
    /// A numbered save: the model's prefix.
    pub numbered: Option<ObjectPath>,
}

fn conflict(msg: String) -> Error {
    Error::new(ErrorKind::PreconditionFailed, msg)
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl StorageService {
    /// The storage path a reference names: a storage path as it is,
    /// `MODEL@N`, `MODEL@latest`, `MODEL@ALIAS`.
    pub async fn resolve(&self, reference: &str) -> Result<String> {
        let at = |e: Error| e.at(self.adapter.name(), "resolve", Some(reference));
        match Reference::parse(reference).map_err(at)? {
            Reference::Path(p) => Ok(p),
            Reference::Version(m, n) => Ok(version_base(&m, n).map_err(at)?.to_string()),
            Reference::Latest(m) => match self.latest(&m).await.map_err(at)? {
                Some(n) => Ok(version_base(&m, n)?.to_string()),
                None => Err(at(Error::new(
                    ErrorKind::NotFound,
                    format!("model `{m}` has no numbered version"),
                ))),
            },
            Reference::Alias(m, a) => match self.alias(&m, &a).await.map_err(at)? {
                Some(v) => Ok(format!("{MODELS}/{m}/{v}")),
                None => Err(at(Error::new(
                    ErrorKind::NotFound,
                    format!("model `{m}` has no alias `{a}`"),
                ))),
            },
        }
    }

    /// Whether a `wharf.json` shows a version, given its transaction.
    pub(crate) async fn visible(&self, slot: Slot, txs: &mut TxCache) -> Result<Visible> {
        Ok(match slot {
            Slot::Manifest(m) => match &m.tx {
                None => Visible::Yes(m),
                Some(id) => match txs.state(self, id).await? {
                    TxState::Committed => Visible::Yes(m),
                    _ => Visible::Uncommitted,
                },
            },
            Slot::Tombstone(t) => match (&t.tx, t.previous) {
                (Some(id), Some(prev)) if txs.state(self, id).await? != TxState::Committed => Visible::Yes(*prev),
                _ => Visible::Deleted,
            },
        })
    }

    /// What a transaction's record says.
    pub(crate) async fn tx_state(&self, id: &str) -> Result<TxState> {
        Ok(self.tx_record(id).await?.map_or(TxState::Pending, |r| r.state))
    }

    /// A transaction's record, if its outcome is decided.
    pub(crate) async fn tx_record(&self, id: &str) -> Result<Option<TxRecord>> {
        let path = tx_record_path(id)?;
        match self.read_small(&path, MAX_RECORD).await {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
                Error::new(ErrorKind::Integrity, format!("transaction record `{path}`: {e}"))
            })?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where a save goes: a given path or version as it is; a model without
    /// a version gets the next number on a backend with atomic create, and
    /// a time-and-random name on one without (mlflow).
    pub(crate) async fn save_target(&self, opts: &SaveOptions) -> Result<SaveTarget> {
        if let Some(m) = &opts.model {
            check_model_name(m)?;
            if let Some(v) = &opts.version
                && (v.starts_with(['_', '.']) || v.contains(['/', '@']))
            {
                return Err(Error::invalid(format!(
                    "version {v:?} must be one path segment without `@`, not starting with `_` or `.`"
                )));
            }
        }
        if opts.path.is_none() && opts.version.is_none() && self.adapter.capabilities().write_create {
            let model = opts.model.as_deref().ok_or_else(|| {
                Error::invalid("saving needs a model name (and optionally a version), or an explicit path")
            })?;
            let prefix = model_prefix(model)?;
            return Ok(SaveTarget {
                opts: opts.clone(),
                base: prefix.join("0")?,
                numbered: Some(prefix),
            });
        }
        let (opts, base) = self.free_base(opts).await?;
        Ok(SaveTarget {
            opts,
            base,
            numbered: None,
        })
    }

    /// Claims the next free number for `manifest` by creating its
    /// `wharf.json` there; on a clash, the next one. Fills in the version
    /// and storage path.
    pub(crate) async fn commit_numbered(&self, model: &ObjectPath, manifest: &mut Manifest) -> Result<()> {
        let name = model.as_str().trim_start_matches("models/").to_string();
        let mut n = self.highest_slot(&name).await? + 1;
        for _ in 0..10_000 {
            let base = model.join(&n.to_string())?;
            manifest.info.storage_path = base.to_string();
            manifest.info.version = Some(n.to_string());
            let bytes = serde_json::to_vec_pretty(&*manifest).expect("a manifest serializes");
            let path = base.join(MANIFEST)?;
            // Create-only: a taken number is refused when the write opens
            // or when it finishes, depending on the backend.
            match self.put_small(&path, PutMode::Create, bytes).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("model `{name}`: 10,000 version numbers in a row were taken while saving"),
        ))
    }

    async fn slot_taken(&self, model: &str, n: u64) -> Result<bool> {
        self.adapter.exists(&version_base(model, n)?.join(MANIFEST)?).await
    }

    /// The highest number with a `wharf.json` (a version, a tombstone or a
    /// claim of a running transaction): numbers are claimed in order, so
    /// an exponential then a binary search finds it in O(log n) checks.
    pub(crate) async fn highest_slot(&self, model: &str) -> Result<u64> {
        let (mut lo, mut hi) = (0u64, 1u64);
        while self.slot_taken(model, hi).await? {
            lo = hi;
            hi = hi.checked_mul(2).ok_or_else(|| Error::invalid("too many versions"))?;
        }
        // lo is taken (or 0), hi is free.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.slot_taken(model, mid).await? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The highest visible numbered version of `model`.
    pub async fn latest(&self, model: &str) -> Result<Option<u64>> {
        let mut n = self.highest_slot(model).await?;
        let mut txs = TxCache::default();
        while n > 0 {
            if let Some((slot, _)) = self.read_slot(&version_base(model, n)?).await?
                && matches!(self.visible(slot, &mut txs).await?, Visible::Yes(_))
            {
                return Ok(Some(n));
            }
            n -= 1;
        }
        Ok(None)
    }

    /// Lists every object under `prefix`, all pages.
    pub(crate) async fn list_all(&self, prefix: &str) -> Result<Vec<crate::adapter::ObjectMeta>> {
        let limit = self.adapter.capabilities().list_max_limit.clamp(1, 1000);
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.adapter.list(prefix, cursor.as_deref(), limit).await?;
            out.extend(page.entries);
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::Integrity,
                        format!("listing `{prefix}`: the backend returned the same cursor twice"),
                    ));
                }
                None => return Ok(out),
            }
        }
    }

    /// The models with at least one version, whose names start with
    /// `prefix`.
    pub async fn models(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = std::collections::BTreeSet::new();
        for o in self.list_all(&format!("{MODELS}/{prefix}")).await? {
            let Some(rest) = o.path.strip_prefix("models/") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            if parts.len() == 3 && parts[2] == MANIFEST && check_model_name(parts[0]).is_ok() {
                names.insert(parts[0].to_string());
            }
        }
        let mut out = Vec::new();
        for m in names {
            if !self.versions(&m).await?.is_empty() {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The visible versions of `model`, numbered ones in order first, then
    /// named ones by name; with the aliases naming each.
    pub async fn versions(&self, model: &str) -> Result<Vec<VersionEntry>> {
        let prefix = model_prefix(model)?;
        let aliases = self.aliases(model).await?;
        let mut txs = TxCache::default();
        let mut out = Vec::new();
        for o in self.list_all(&format!("{prefix}/")).await? {
            let rest = &o.path[prefix.as_str().len() + 1..];
            let Some((v, MANIFEST)) = rest.split_once('/') else {
                continue;
            };
            let base = prefix.join(v)?;
            let Some((slot, _)) = self.read_slot(&base).await? else {
                continue;
            };
            if let Visible::Yes(m) = self.visible(slot, &mut txs).await? {
                out.push(VersionEntry {
                    version: v.to_string(),
                    storage_path: base.to_string(),
                    created_at: m.info.created_at.clone(),
                    size_bytes: m.info.size_bytes,
                    format: m.info.format,
                    aliases: aliases
                        .iter()
                        .filter(|(_, t)| *t == v)
                        .map(|(a, _)| a.clone())
                        .collect(),
                });
            }
        }
        out.sort_by(|a, b| {
            let key = |e: &VersionEntry| {
                (
                    e.version.parse::<u64>().map_or(1, |_| 0),
                    e.version.len(),
                    e.version.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    pub(crate) fn alias_path(model: &str, alias: &str) -> Result<ObjectPath> {
        check_alias_name(alias)?;
        model_prefix(model)?.join(ALIASES)?.join(alias)
    }

    /// Reads an alias object with its etag.
    pub(crate) async fn read_alias(&self, model: &str, alias: &str) -> Result<Option<(AliasRecord, Option<String>)>> {
        let path = Self::alias_path(model, alias)?;
        let etag = match self.adapter.stat(&path).await {
            Ok(m) => m.etag,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = match self.read_small(&path, MAX_RECORD).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let r: AliasRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Integrity, format!("alias object `{path}`: {e}")))?;
        Ok(Some((r, etag)))
    }

    /// What an alias record names now.
    pub(crate) async fn alias_target(&self, r: &AliasRecord, txs: &mut TxCache) -> Result<Option<String>> {
        match &r.tx {
            None => Ok(Some(r.version.clone())),
            Some(id) => match txs.state(self, id).await? {
                TxState::Committed => Ok(Some(r.version.clone())),
                _ => Ok(r.previous.clone()),
            },
        }
    }

    /// The version an alias names.
    pub async fn alias(&self, model: &str, alias: &str) -> Result<Option<String>> {
        match self.read_alias(model, alias).await? {
            Some((r, _)) => self.alias_target(&r, &mut TxCache::default()).await,
            None => Ok(None),
        }
    }

    /// Every alias of `model` and the version it names.
    pub async fn aliases(&self, model: &str) -> Result<BTreeMap<String, String>> {
        let dir = format!("{}/{ALIASES}/", model_prefix(model)?);
        let mut txs = TxCache::default();
        let mut out = BTreeMap::new();
        for o in self.list_all(&dir).await? {
            let name = &o.path[dir.len()..];
            if check_alias_name(name).is_err() {
                continue;
            }
            if let Some((r, _)) = self.read_alias(model, name).await?
                && let Some(v) = self.alias_target(&r, &mut txs).await?
            {
                out.insert(name.to_string(), v);
            }
        }
        Ok(out)
    }

    /// Writes an alias object: create-only when `etag` is `None`, else a
    /// compare-and-swap on it. A lost race is `precondition-failed`.
    pub(crate) async fn write_alias(
        &self,
        model: &str,
        alias: &str,
        record: &AliasRecord,
        etag: Option<String>,
    ) -> Result<()> {
        let path = Self::alias_path(model, alias)?;
        let caps = self.adapter.capabilities();
        if !(caps.write_create && caps.write_update) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "aliases need atomic create and compare-and-swap, which this backend does not have",
            ));
        }
        let mode = match etag {
            Some(e) => PutMode::Update(e),
            None => PutMode::Create,
        };
        let bytes = serde_json::to_vec(record).expect("an alias serializes");
        match self.put_small(&path, mode, bytes).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::AlreadyExists | ErrorKind::PreconditionFailed | ErrorKind::NotFound
                ) =>
            {
                Err(conflict(format!(
                    "alias `{model}@{alias}` was moved by someone else meanwhile; nothing was changed"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Points `MODEL@ALIAS` at `version` atomically (compare-and-swap on
    /// the alias object): of two concurrent moves one wins and the other
    /// fails with `precondition-failed`, never a lost update. Fails with
    /// `not-found` when the version does not exist or is deleted meanwhile.
    pub async fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<()> {
        let at = |e: Error| e.at(self.adapter.name(), "alias", Some(&format!("{model}@{alias}")));
        let base = model_prefix(model).map_err(at)?.join(version).map_err(at)?;
        if !self.exists(base.as_str()).await.map_err(at)? {
            return Err(at(Error::new(
                ErrorKind::NotFound,
                format!("model `{model}` has no version `{version}`"),
            )));
        }
        let current = self.read_alias(model, alias).await.map_err(at)?;
        let (old, etag) = match current {
            Some((r, etag)) => {
                if let Some(id) = &r.tx
                    && self.tx_state(id).await.map_err(at)? == TxState::Pending
                {
                    return Err(at(conflict(format!(
                        "alias `{model}@{alias}` is being moved by transaction {id}"
                    ))));
                }
                let target = self.alias_target(&r, &mut TxCache::default()).await.map_err(at)?;
                (target, etag)
            }
            None => (None, None),
        };
        let record = AliasRecord {
            version: version.to_string(),
            tx: None,
            previous: None,
        };
        self.write_alias(model, alias, &record, etag).await.map_err(at)?;
        // A delete of the version may have raced this move: it tombstones
        // first and then looks for aliases, this moves first and then looks
        // for the tombstone (a transaction's too, committed or not), so one
        // of the two sees the other.
        if !matches!(self.read_slot(&base).await.map_err(at)?, Some((Slot::Manifest(_), _))) {
            if let Ok(Some((_, etag))) = self.read_alias(model, alias).await {
                let undo = match old {
                    Some(v) => {
                        self.write_alias(
                            model,
                            alias,
                            &AliasRecord {
                                version: v,
                                tx: None,
                                previous: None,
                            },
                            etag,
                        )
                        .await
                    }
                    None => self.adapter.delete(&Self::alias_path(model, alias)?).await,
                };
                if let Err(e) = undo {
                    tracing::warn!("undoing alias {model}@{alias} after its version was deleted: {e}");
                }
            }
            return Err(at(Error::new(
                ErrorKind::NotFound,
                format!("version `{version}` of `{model}` was deleted while the alias moved"),
            )));
        }
        Ok(())
    }

    /// Removes `MODEL@ALIAS`; returns whether it existed.
    pub async fn remove_alias(&self, model: &str, alias: &str) -> Result<bool> {
        let at = |e: Error| e.at(self.adapter.name(), "alias", Some(&format!("{model}@{alias}")));
        match self.read_alias(model, alias).await.map_err(at)? {
            None => Ok(false),
            Some((r, _)) => {
                if let Some(id) = &r.tx
                    && self.tx_state(id).await.map_err(at)? == TxState::Pending
                {
                    return Err(at(conflict(format!(
                        "alias `{model}@{alias}` is being moved by transaction {id}"
                    ))));
                }
                self.adapter
                    .delete(&Self::alias_path(model, alias).map_err(at)?)
                    .await
                    .map_err(at)?;
                Ok(true)
            }
        }
    }

    /// Deletes a model version (a storage path or a reference). Its
    /// manifest goes first, so it is gone at once, then its files. A
    /// numbered version leaves a tombstone so its number is never reused,
    /// and is refused while an alias names it. Returns whether it existed.
    pub async fn delete(&self, storage_path: &str) -> Result<bool> {
        let path = match self.resolve(storage_path).await {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let at = |e: Error| e.at(self.adapter.name(), "delete", Some(storage_path));
        let base = ObjectPath::parse(&path).map_err(at)?;
        let Some((slot, etag)) = self.read_slot_at(&base, true).await? else {
            return Ok(false);
        };
        if let Slot::Tombstone(Tombstone { tx: Some(id), .. }) = &slot
            && self.tx_state(id).await? == TxState::Pending
        {
            return Err(at(conflict(format!("`{path}` is being deleted by transaction {id}"))));
        }
        let m = match self.visible(slot, &mut TxCache::default()).await? {
            Visible::Yes(m) => m,
            _ => return Ok(false),
        };
        let manifest_path = base.join(MANIFEST)?;
        if let Some((model, _)) = numbered(&path) {
            let stone = Tombstone {
                wharf_tombstone: 1,
                deleted_at: now(),
                tx: None,
                previous: None,
            };
            self.swap_slot(
                &manifest_path,
                &serde_json::to_vec_pretty(&stone).expect("serializes"),
                etag,
            )
            .await
            .map_err(at)?;
            let version = &path[path.rfind('/').map_or(0, |i| i + 1)..];
            let pointing: Vec<String> = self
                .aliases(model)
                .await
                .map_err(at)?
                .into_iter()
                .filter(|(_, v)| v == version)
                .map(|(a, _)| a)
                .collect();
            if !pointing.is_empty() {
                // Put the version back as it was, then refuse.
                let now_etag = self.adapter.stat(&manifest_path).await.ok().and_then(|m| m.etag);
                self.swap_slot(
                    &manifest_path,
                    &serde_json::to_vec_pretty(&m).expect("serializes"),
                    now_etag,
                )
                .await
                .map_err(at)?;
                return Err(at(conflict(format!(
                    "`{model}@{version}` is named by alias {}; move or remove {} first",
                    pointing.join(", "),
                    if pointing.len() == 1 { "it" } else { "them" }
                ))));
            }
        } else {
            self.adapter.delete(&manifest_path).await.map_err(at)?;
        }
        let data = m.data_prefix(&base)?;
        for f in &m.info.files {
            self.adapter.delete(&data.join(&f.path)?).await.map_err(at)?;
        }
        Ok(true)
    }

    /// Replaces a `wharf.json`: compare-and-swap on `etag` where the
    /// backend has it, else an overwrite.
    pub(crate) async fn swap_slot(&self, path: &ObjectPath, bytes: &[u8], etag: Option<String>) -> Result<()> {
        let mode = match etag {
            Some(e) if self.adapter.capabilities().write_update => PutMode::Update(e),
            _ => PutMode::Overwrite,
        };
        match self.put_small(path, mode, bytes.to_vec()).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::PreconditionFailed | ErrorKind::NotFound) => Err(conflict(
                format!("`{path}` was changed by someone else meanwhile; nothing was changed"),
            )),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(
            Reference::parse("models/a/1").unwrap(),
            Reference::Path("models/a/1".into())
        );
        assert_eq!(Reference::parse("det@3").unwrap(), Reference::Version("det".into(), 3));
        assert_eq!(Reference::parse("det@latest").unwrap(), Reference::Latest("det".into()));
        assert_eq!(
            Reference::parse("det@production").unwrap(),
            Reference::Alias("det".into(), "production".into())
        );
        assert_eq!(Reference::parse("plain").unwrap(), Reference::Path("plain".into()));
        for bad in ["det@0", "@prod", "_x@1", "det@", "det@a b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbered_paths() {
        assert_eq!(numbered("models/a/12"), Some(("a", 12)));
        for p in ["models/a/v1", "models/a/012", "models/a/1/x", "other/a/1", "models/a"] {
            assert_eq!(numbered(p), None, "{p}");
        }
    }
}
