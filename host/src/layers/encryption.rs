//! Encryption in the age format (age-encryption.org/v1, see
//! `super::age`): X25519 recipients or an scrypt passphrase, and a
//! ChaCha20-Poly1305 STREAM payload in 64 KiB chunks. `age -d`, rage and
//! pyrage decrypt what this layer writes; it reads what they write.
//!
//! Writers need only recipients (public keys), readers only identities
//! (secret keys): a training job can save models it cannot read back, a
//! serving job can read without being able to write. Keys rotate by
//! adding the new recipient and keeping the old identity for as long as
//! objects encrypted to it exist.
//!
//! Every chunk is authenticated with its index and whether it is the
//! last: a changed byte, truncation (the chunk before a cut was not sealed
//! as the last) and reordering fail as `integrity`, and nothing is
//! returned before it is authenticated. The header is authenticated by
//! its MAC once a recipient stanza opened; a header that no configured
//! identity opens is a `config` error (the fix is the identity), which is
//! also what a changed stanza looks like: age cannot tell them apart.
//!
//! The header's length depends on the recipients, so `stat` and `list`
//! read each object's header (its first 4 KiB at most, typically 184
//! bytes) to know the logical size; they need no identity. A ranged read
//! costs an inner `stat`, that read, and one ranged read of the covering
//! chunks.
//!
//! The payload cipher is `ring`'s ChaCha20-Poly1305 (assembly), measured
//! on this project's 2-vCPU VM sealing 64 KiB chunks, one core:
//! see BENCHMARKS.md.

use super::Layer;
use super::age::{self, Identity, Recipient, Refusal, Seal};
use super::transform::{Chunked, Codec, Opener, ReadRequest, Sink, Site, Transform, cpu, read_chunked, read_header};
use crate::adapter::{Adapter, Encoding, ObjectMeta, ObjectReader, ObjectWriter};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use ring::aead::{Aad, LessSafeKey};
use std::fmt;
use std::sync::Arc;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: u64 = age::CHUNK;
/// The `algorithm` of [`Encoding::Encryption`].
pub const ALGORITHM: &str = "age-encryption.org/v1";
/// Header bytes read first to find an object's header (one read for up
/// to about 40 recipients), then up to the format's limit.
const WINDOWS: [usize; 2] = [4 << 10, age::MAX_HEADER + 48 + age::NONCE_LEN + 1];

fn geometry(header: usize) -> Chunked {
    Chunked {
        header: header as u64,
        chunk: age::CHUNK,
        overhead: age::TAG,
        trailer: 0,
    }
}

/// Encrypts every object to age recipients (or a passphrase) and decrypts
/// with identities (or the passphrase).
///
/// A layer with recipients only writes and refuses reads, one with
/// identities only reads and refuses writes, each with a `config` error
/// that says what to add. Reading an object not in the age format is an
/// `integrity` error: bytes never pass through undecrypted.
///
/// ```
/// use wharf::layers::{AgeIdentity, Encryption};
/// let key = AgeIdentity::generate(); // or AgeIdentity::parse_file(&text)?
/// let training = Encryption::new().with_recipients([key.recipient()]);
/// let serving = Encryption::new().with_identities([key]);
/// training.check()?;
/// serving.check()?;
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone)]
pub struct Encryption {
    recipients: Vec<Recipient>,
    identities: Arc<Vec<Identity>>,
    passphrase: Option<Arc<[u8]>>,
    work_factor: u8,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption")
            .field("recipients", &self.recipients)
            .field("identities", &self.identities.len())
            .field("passphrase", &self.passphrase.is_some())
            .finish()
    }
}

impl Default for Encryption {
    fn default() -> Self {
        Encryption::new()
    }
}

impl Encryption {
    /// A layer with nothing to encrypt to or decrypt with yet: add
    /// recipients, identities or a passphrase.
    pub fn new() -> Self {
        Encryption {
            recipients: Vec::new(),
            identities: Arc::default(),
            passphrase: None,
            work_factor: age::DEFAULT_WORK_FACTOR,
        }
    }

    /// Also encrypts new objects to `recipients` (each of them can read
    /// them).
    pub fn with_recipients(mut self, recipients: impl IntoIterator<Item = Recipient>) -> Self {
        self.recipients.extend(recipients);
        self
    }

    /// Also reads objects encrypted to any of `identities`.
    pub fn with_identities(mut self, identities: impl IntoIterator<Item = Identity>) -> Self {
        Arc::make_mut(&mut self.identities).extend(identities);
        self
    }

    /// Encrypts to and decrypts with a passphrase (age's scrypt
    /// recipient): every write and every read then costs one scrypt, about
    /// 1 s at the default work factor. age allows no other recipient
    /// beside a passphrase ([`Encryption::check`]). Prefer X25519 keys for
    /// automated systems.
    pub fn with_passphrase(mut self, passphrase: &str) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(Error::config("encryption layer: the passphrase is empty"));
        }
        self.passphrase = Some(passphrase.as_bytes().into());
        Ok(self)
    }

    /// The scrypt work factor (log2 N) passphrase writes use, and the most
    /// a passphrase read spends (an object asking more is a `config`
    /// error, before any work: 2^N KiB of memory per read), 1 to
    /// [`MAX_WORK_FACTOR`](super::MAX_WORK_FACTOR) (age's readers refuse
    /// more); default [`DEFAULT_WORK_FACTOR`](super::DEFAULT_WORK_FACTOR).
    pub fn with_work_factor(mut self, work_factor: u8) -> Result<Self> {
        if !(1..=age::MAX_WORK_FACTOR).contains(&work_factor) {
            return Err(Error::config(format!(
                "encryption layer: work_factor {work_factor} is outside 1..={} (age's readers refuse more)",
                age::MAX_WORK_FACTOR
            )));
        }
        self.work_factor = work_factor;
        Ok(self)
    }

    /// Checks the combination: something to do, and no passphrase beside
    /// recipients (age's rule).
    pub fn check(&self) -> Result<()> {
        if self.passphrase.is_some() && !self.recipients.is_empty() {
            return Err(Error::config(
                "encryption layer: a passphrase cannot be combined with recipients (an age scrypt stanza must be an object's only one)",
            ));
        }
        if self.header_len() > age::MAX_HEADER as u64 {
            return Err(Error::config(format!(
                "encryption layer: {} recipients make a header longer than the {} bytes a reader accepts",
                self.recipients.len(),
                age::MAX_HEADER
            )));
        }
        if self.passphrase.is_none() && self.recipients.is_empty() && self.identities.is_empty() {
            return Err(Error::config(
                "encryption layer: give `recipients` (to write), `identities` (to read), or a `passphrase`",
            ));
        }
        Ok(())
    }

    /// The recipients new objects are encrypted to.
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// Bytes of the header this layer writes (with the payload nonce).
    fn header_len(&self) -> u64 {
        let work_factor = self.passphrase.is_some().then_some(self.work_factor);
        age::sealed_len(self.recipients.len(), work_factor) as u64
    }
}

impl Layer for Encryption {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Transform::wrap(inner, EncryptionCodec { cfg: self.clone() })
    }
}

struct EncryptionCodec {
    cfg: Encryption,
}

/// The length of the header at the start of the stored object `path`
/// (`stored` bytes), read without opening it.
async fn stored_header_len(inner: &dyn Adapter, meta: &ObjectMeta, site: &Site) -> Result<u64> {
    let path = crate::path::ObjectPath::parse(&meta.path).map_err(|e| site.locate(e))?;
    let parse = |h: &[u8]| age::parse(h).map_err(|why| site.integrity(why));
    read_header(inner, &path, meta.size, &WINDOWS, site, parse)
        .await?
        .map(|h| h.len as u64)
        .ok_or_else(|| {
            site.integrity("the object ends inside its age header: it is truncated, or not in the age format")
        })
}

#[async_trait]
impl Codec for EncryptionCodec {
    const LAYER: &'static str = "encryption";

    fn encoding(&self) -> Encoding {
        let recipients = if self.cfg.passphrase.is_some() {
            vec!["scrypt".to_string()]
        } else {
            self.cfg.recipients.iter().map(Recipient::to_string).collect()
        };
        Encoding::Encryption {
            algorithm: ALGORITHM.into(),
            recipients,
        }
    }

    fn max_object_size(&self, inner: Option<u64>) -> Option<u64> {
        inner.map(|m| geometry(self.cfg.header_len() as usize).max_logical(m))
    }

    fn stored_size(&self, logical: u64) -> Option<u64> {
        Some(geometry(self.cfg.header_len() as usize).stored_size(logical))
    }

    async fn logical_size(&self, inner: &dyn Adapter, meta: &ObjectMeta, site: &Site) -> Result<u64> {
        let header = stored_header_len(inner, meta, site).await?;
        geometry(header as usize)
            .logical_size(meta.size)
            .ok_or_else(|| super::transform::impossible_size(site, meta.size))
    }

    async fn read(&self, req: ReadRequest<'_>) -> Result<Box<dyn ObjectReader>> {
        let site = req.site.clone();
        let cfg = &self.cfg;
        if cfg.identities.is_empty() && cfg.passphrase.is_none() {
            return Err(site.error(
                ErrorKind::Config,
                "this encryption layer has recipients only: it writes objects but cannot read them; add `identities` to read",
            ));
        }
        read_chunked(req, &WINDOWS, |b, _full| {
            let Some(header) = age::parse(b).map_err(|why| site.integrity(why))? else {
                return Ok(None);
            };
            let open = || header.open(b, &cfg.identities, cfg.passphrase.as_deref(), cfg.work_factor);
            // An scrypt takes about a second: tell the runtime this worker
            // blocks, so its other tasks move (a current-thread runtime
            // just waits).
            let multi =
                tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
            let opened = if header.is_scrypt() && multi {
                tokio::task::block_in_place(open)
            } else {
                open()
            };
            let key = opened.map_err(|r| match r {
                Refusal::NotRecipient(why) => site.error(ErrorKind::Config, why),
                Refusal::Corrupt(why) => site.integrity(why),
            })?;
            Ok(Some((geometry(header.len), Decryptor { key })))
        })
        .await
    }

    async fn write(&self, mut sink: Sink, site: Site) -> Result<Box<dyn ObjectWriter>> {
        let cfg = &self.cfg;
        let to = match &cfg.passphrase {
            Some(p) => Seal::Passphrase(p.clone(), cfg.work_factor),
            None if cfg.recipients.is_empty() => {
                return Err(site.error(
                    ErrorKind::Config,
                    "this encryption layer has identities only: it reads objects but cannot write them; add `recipients` to write",
                ));
            }
            None => Seal::Recipients(cfg.recipients.clone()),
        };
        // An scrypt takes about a second: off the async workers.
        let work = if cfg.passphrase.is_some() { u64::MAX } else { 0 };
        let (header, key) = cpu(work, move || age::seal(to))
            .await
            .map_err(|why| site.error(ErrorKind::Io, why))?;
        debug_assert_eq!(header.len() as u64, cfg.header_len());
        sink.send(Bytes::from(header)).await?;
        Ok(Box::new(EncryptWriter {
            sink,
            sealer: Some(Sealer { key, index: 0 }),
            site,
            pending: BytesMut::new(),
            total: 0,
        }))
    }
}

struct Decryptor {
    key: LessSafeKey,
}

impl Opener for Decryptor {
    fn open(
        &mut self,
        index: u64,
        last: bool,
        stored: Bytes,
        out: &mut BytesMut,
    ) -> std::result::Result<Option<Bytes>, String> {
        let start = out.len();
        out.extend_from_slice(&stored);
        let n = self
            .key
            .open_in_place(age::chunk_nonce(index, last), Aad::empty(), &mut out[start..])
            .map_err(|_| "fails authentication: the object was changed, truncated or reordered".to_string())?
            .len();
        out.truncate(start + n);
        Ok(None)
    }

    fn trailer(&mut self, _total: u64, _trailer: &[u8], _full: bool) -> std::result::Result<(), String> {
        Ok(())
    }

    fn final_chunk_on_ranged_reads(&self) -> bool {
        // age: a reader that seeks must first check the final chunk, or a
        // cut at a chunk boundary goes unseen.
        true
    }
}

/// What sealing needs, moved to the blocking pool and back.
struct Sealer {
    key: LessSafeKey,
    index: u64,
}

impl Sealer {
    /// Seals each of `chunks` (the last one final if `last`) onto `out`.
    fn seal(&mut self, chunks: &[Bytes], last: bool, out: &mut BytesMut) -> std::result::Result<(), &'static str> {
        for (k, data) in chunks.iter().enumerate() {
            let start = out.len();
            out.extend_from_slice(data);
            let final_chunk = last && k + 1 == chunks.len();
            let tag = self
                .key
                .seal_in_place_separate_tag(
                    age::chunk_nonce(self.index, final_chunk),
                    Aad::empty(),
                    &mut out[start..],
                )
                .map_err(|_| "ChaCha20-Poly1305 sealing failed")?;
            out.extend_from_slice(tag.as_ref());
            self.index += 1;
        }
        Ok(())
    }
}

struct EncryptWriter {
    sink: Sink,
    /// `None` only while `cpu` has it.
    sealer: Option<Sealer>,
    site: Site,
    /// The chunk being filled; a full one is held until more data shows it
    /// is not the last (age's final chunk is empty only in an empty object).
    pending: BytesMut,
    total: u64,
}

impl EncryptWriter {
    /// Seals `chunks` on the blocking pool and sends them as one buffer.
    async fn emit(&mut self, chunks: Vec<Bytes>, last: bool) -> Result<()> {
        let mut sealer = self.sealer.take().expect("one call at a time");
        let work = chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        // Allocated here, not on the blocking pool: see `frame`.
        let mut out = BytesMut::with_capacity(work as usize + chunks.len() * age::TAG as usize);
        let (sealer, sealed) = cpu(work, move || {
            let r = sealer.seal(&chunks, last, &mut out).map(|()| out.freeze());
            (sealer, r)
        })
        .await;
        self.sealer = Some(sealer);
        let sealed = sealed.map_err(|why| self.site.error(ErrorKind::Invalid, why))?;
        self.sink.send(sealed).await
    }
}

#[async_trait]
impl ObjectWriter for EncryptWriter {
    async fn append(&mut self, mut chunk: Bytes) -> Result<()> {
        self.total += chunk.len() as u64;
        let chunk_size = CHUNK_SIZE as usize;
        let mut full = Vec::new();
        while !chunk.is_empty() {
            if self.pending.len() == chunk_size {
                full.push(self.pending.split().freeze());
            }
            if self.pending.is_empty() && chunk.len() > chunk_size {
                full.push(chunk.split_to(chunk_size));
                continue;
            }
            let k = (chunk_size - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk.split_to(k));
        }
        if full.is_empty() {
            return Ok(());
        }
        self.emit(full, false).await
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let last = self.pending.split().freeze();
        self.emit(vec![last], true).await?;
        let EncryptWriter { sink, total, .. } = *self;
        sink.finish_logical(total).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.sink.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Layer;
    use crate::layers::testing::{edit, get, over_memory, overwrite, p, put, random, read_fails, stored};
    use crate::{ByteRange, InMemory};

    const STEP: u64 = CHUNK_SIZE + age::TAG;

    /// The conformance suite, through this layer over `InMemory`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_encryption() {
        let id = Identity::generate();
        let e = Encryption::new()
            .with_recipients([id.recipient()])
            .with_identities([id]);
        crate::layers::testing::conformance_over_memory(crate::layers::Stack::new().layer(e)).await;
    }

    fn both(id: &Identity) -> Encryption {
        Encryption::new()
            .with_recipients([id.recipient()])
            .with_identities([id.clone()])
    }

    /// A byte of ciphertext changed, the payload nonce or the header's MAC
    /// changed, the stored object cut (inside a chunk, at a chunk
    /// boundary, the final chunk dropped, inside the header), and two
    /// chunks swapped: each is an integrity error. A ranged read that does
    /// not cover the changed chunk still works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encryption_refuses_tampering_truncation_and_reordering() {
        let id = Identity::generate();
        let (store, a) = over_memory(crate::layers::Stack::new().layer(both(&id)));
        let data = random(10 * CHUNK_SIZE + 100, 8);
        put(a.as_ref(), "e", &data).await;
        let original = stored(&store, "e");
        let h = both(&id).header_len();
        assert_eq!(original.len() as u64, h + 10 * STEP + 100 + age::TAG);
        let restore = || overwrite(&store, "e", &original);

        let chunk5 = (h + 5 * STEP + 1000) as usize;
        edit(&store, "e", |b| b[chunk5] ^= 0x01);
        let why = read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
        assert!(why.contains("chunk 5"), "{why}");
        let covering = Some(ByteRange {
            start: 5 * CHUNK_SIZE + 10,
            end: Some(5 * CHUNK_SIZE + 20),
        });
        read_fails(a.as_ref(), "e", covering, ErrorKind::Integrity, "encryption").await;
        let elsewhere = ByteRange {
            start: 100,
            end: Some(3 * CHUNK_SIZE),
        };
        assert_eq!(
            get(a.as_ref(), "e", Some(elsewhere)).await.unwrap(),
            data[100..3 * CHUNK_SIZE as usize]
        );
        restore();

        // The payload nonce (the header's last 16 bytes) and the MAC.
        for at in [h as usize - 3, h as usize - 20] {
            edit(&store, "e", |b| b[at] ^= 0x01);
            read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
            restore();
        }

        // Cut at a chunk boundary: a ranged read that stops before the cut
        // fails too (the final chunk is checked first, as age says).
        overwrite(&store, "e", &original[..(h + 4 * STEP) as usize]);
        let early = Some(ByteRange {
            start: 0,
            end: Some(100),
        });
        let why = read_fails(a.as_ref(), "e", early, ErrorKind::Integrity, "encryption").await;
        assert!(why.contains("final chunk 3"), "{why}");
        restore();

        for cut in [
            original.len() - 1,
            (h + 10 * STEP) as usize,
            (h + 4 * STEP) as usize,
            (h + 4 * STEP) as usize + 500,
            (h - 10) as usize,
            40,
        ] {
            overwrite(&store, "e", &original[..cut]);
            read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
        }
        restore();

        edit(&store, "e", |b| {
            let (c1, c2) = ((h + STEP) as usize, (h + 2 * STEP) as usize);
            let first = b[c1..c2].to_vec();
            b.copy_within(c2..c2 + STEP as usize, c1);
            b[c2..c2 + STEP as usize].copy_from_slice(&first);
        });
        let why = read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
        assert!(why.contains("chunk 1"), "{why}");
        restore();
        assert_eq!(get(a.as_ref(), "e", None).await.unwrap(), data);

        // Not age at all: integrity, never the bytes.
        overwrite(&store, "e", b"plain bytes that were never encrypted");
        read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
    }

    /// Writers with recipients only, readers with identities only; a
    /// stranger's identity is a config error; rotation; several recipients
    /// each read; a passphrase.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recipients_write_identities_read_and_keys_rotate() {
        let store = InMemory::new();
        let inner: Arc<dyn Adapter> = Arc::new(store.clone());
        let (old, new, stranger) = (Identity::generate(), Identity::generate(), Identity::generate());
        let v1 = random(300_000, 9);

        let writer = Encryption::new().with_recipients([old.recipient()]).wrap(inner.clone());
        put(writer.as_ref(), "old.bin", &v1).await;
        let why = read_fails(writer.as_ref(), "old.bin", None, ErrorKind::Config, "encryption").await;
        assert!(why.contains("add `identities`"), "{why}");
        let reader = Encryption::new().with_identities([old.clone()]).wrap(inner.clone());
        assert_eq!(get(reader.as_ref(), "old.bin", None).await.unwrap(), v1);
        let w = reader.write(&p("x"), crate::PutMode::Overwrite, None).await;
        assert_eq!(w.err().map(|e| e.kind()), Some(ErrorKind::Config));
        // stat and list need no identity.
        assert_eq!(writer.stat(&p("old.bin")).await.unwrap().size, v1.len() as u64);

        let other = Encryption::new()
            .with_identities([stranger.clone()])
            .wrap(inner.clone());
        let why = read_fails(other.as_ref(), "old.bin", None, ErrorKind::Config, "encryption").await;
        assert!(why.contains("none of the 1 configured identities"), "{why}");
        assert!(!why.contains(&stranger.to_secret_string()[16..]), "{why}");

        // Rotation: new objects to the new key, old identity kept to read.
        let rotated = Encryption::new()
            .with_recipients([new.recipient()])
            .with_identities([new.clone(), old.clone()])
            .wrap(inner.clone());
        assert_eq!(get(rotated.as_ref(), "old.bin", None).await.unwrap(), v1);
        let v2 = random(200_000, 10);
        put(rotated.as_ref(), "new.bin", &v2).await;
        let dropped = Encryption::new().with_identities([new.clone()]).wrap(inner.clone());
        assert_eq!(get(dropped.as_ref(), "new.bin", None).await.unwrap(), v2);
        read_fails(dropped.as_ref(), "old.bin", None, ErrorKind::Config, "encryption").await;
        assert!(
            matches!(&rotated.encodings()[0], Encoding::Encryption { recipients, .. } if *recipients == [new.recipient().to_string()])
        );

        // Three recipients: a longer header, each of them reads, sizes and
        // ranges still map.
        let three = Encryption::new().with_recipients([old.recipient(), new.recipient(), stranger.recipient()]);
        let v3 = random(3 * CHUNK_SIZE + 7, 11);
        put(three.wrap(inner.clone()).as_ref(), "three.bin", &v3).await;
        for id in [&old, &new, &stranger] {
            let r = Encryption::new().with_identities([id.clone()]).wrap(inner.clone());
            let range = ByteRange {
                start: CHUNK_SIZE - 1,
                end: Some(2 * CHUNK_SIZE + 1),
            };
            assert_eq!(
                get(r.as_ref(), "three.bin", Some(range)).await.unwrap(),
                v3[CHUNK_SIZE as usize - 1..2 * CHUNK_SIZE as usize + 1]
            );
        }
        let listed = reader.list("", None, 100).await.unwrap();
        let sizes: Vec<(String, u64)> = listed.entries.into_iter().map(|m| (m.path, m.size)).collect();
        assert_eq!(
            sizes,
            [
                ("new.bin".to_string(), v2.len() as u64),
                ("old.bin".to_string(), v1.len() as u64),
                ("three.bin".to_string(), v3.len() as u64)
            ]
        );
        assert_eq!(
            stored(&store, "three.bin").len() as u64,
            three.header_len() + v3.len() as u64 + 4 * age::TAG
        );

        // A passphrase (a small work factor, for speed).
        let pw = Encryption::new()
            .with_passphrase("correct horse")
            .unwrap()
            .with_work_factor(4)
            .unwrap();
        let a = pw.wrap(inner.clone());
        put(a.as_ref(), "pw.bin", &v2).await;
        assert_eq!(
            stored(&store, "pw.bin").len() as u64,
            pw.header_len() + v2.len() as u64 + 4 * age::TAG
        );
        assert_eq!(get(a.as_ref(), "pw.bin", None).await.unwrap(), v2);
        let wrong = Encryption::new()
            .with_passphrase("battery staple")
            .unwrap()
            .wrap(inner.clone());
        read_fails(wrong.as_ref(), "pw.bin", None, ErrorKind::Config, "encryption").await;
        read_fails(reader.as_ref(), "pw.bin", None, ErrorKind::Config, "encryption").await;
        assert!(format!("{pw:?}").contains("passphrase: true") && !format!("{pw:?}").contains("horse"));
        assert!(Encryption::new().with_work_factor(23).is_err());
        assert!(Encryption::new().with_passphrase("").is_err());
        assert!(pw.clone().with_recipients([old.recipient()]).check().is_err());
        assert!(Encryption::new().check().is_err());
        assert_eq!(Encryption::default().work_factor, age::DEFAULT_WORK_FACTOR);
        let many = Encryption::new().with_recipients(std::iter::repeat_n(old.recipient(), 700));
        assert!(many.check().unwrap_err().to_string().contains("700 recipients"));
        // A reader spends at most its own work factor.
        let cheap = Encryption::new()
            .with_passphrase("correct horse")
            .unwrap()
            .with_work_factor(3)
            .unwrap()
            .wrap(inner.clone());
        let why = read_fails(cheap.as_ref(), "pw.bin", None, ErrorKind::Config, "encryption").await;
        assert!(why.contains("work factor 4"), "{why}");
    }
}
