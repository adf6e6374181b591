//! The age file format, version 1 (<https://age-encryption.org/v1>): its
//! keys, its header and its payload's key and nonces. The encryption
//! layer streams the payload itself (`super::encryption`); this module
//! has no I/O.
//!
//! ```text
//! age-encryption.org/v1
//! -> X25519 <ephemeral share, base64>        one stanza per recipient
//! <file key wrapped with ChaCha20-Poly1305, base64, lines of 64 columns>
//! --- <HMAC-SHA-256 of the header up to and including "---", base64>
//! <16-byte payload nonce><ChaCha20-Poly1305 STREAM: 64 KiB chunks, each + 16-byte tag>
//! ```
//!
//! Base64 is the standard alphabet without padding. Keys: the file key is
//! 16 random bytes; the header's MAC key is HKDF-SHA-256(file key, salt
//! empty, "header"); the payload key HKDF-SHA-256(file key, salt = the
//! payload nonce, "payload"). An X25519 stanza wraps the file key with
//! HKDF-SHA-256(shared secret, salt = ephemeral share ‖ recipient,
//! "age-encryption.org/v1/X25519"); an scrypt stanza with
//! scrypt(passphrase, "age-encryption.org/v1/scrypt" ‖ salt, 2^N, 8, 1),
//! and is then the header's only stanza. A chunk's nonce is its index as
//! 11 big-endian bytes and a byte that is 1 on the final chunk only.
//!
//! HKDF, HMAC and the AEAD are `ring`'s (its ChaCha20-Poly1305 is the
//! assembly one), X25519 is `x25519-dalek`'s (ring takes no static
//! secret), scrypt RustCrypto's. Checked against the reference
//! implementations in `tests/tests/age_interop.rs` (the `age` CLI and
//! rage through pyrage).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::{hkdf, hmac};
use std::fmt;

pub(super) const INTRO: &[u8] = b"age-encryption.org/v1\n";
/// Plaintext bytes per payload chunk.
pub(super) const CHUNK: u64 = 64 << 10;
pub(super) const TAG: u64 = 16;
pub(super) const NONCE_LEN: usize = 16;
const FILE_KEY_LEN: usize = 16;
const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const SCRYPT_LABEL: &[u8] = b"age-encryption.org/v1/scrypt";
const COLUMNS: usize = 64;
/// The scrypt work factor (log2 N) written by default: age's.
pub const DEFAULT_WORK_FACTOR: u8 = 18;
/// The largest scrypt work factor: age's default limit for readers
/// (2^22 KiB = 4 GiB of memory, about 15 s). A layer reads up to its own
/// `work_factor` only.
pub const MAX_WORK_FACTOR: u8 = 22;

/// An age X25519 recipient: a public key, `age1…`. Objects encrypted to
/// it can be read only with its identity.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

impl Recipient {
    /// Parses `age1…` (Bech32); a `config` error says why not, showing the
    /// text (a public key is not a secret).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (hrp, data) = bech32_decode(s).map_err(|why| format!("recipient {s:?}: {why}"))?;
        if hrp != "age" {
            return Err(format!("recipient {s:?}: not an age X25519 recipient (age1…)"));
        }
        let key = <[u8; 32]>::try_from(data).map_err(|_| format!("recipient {s:?}: not 32 bytes"))?;
        // A low-order point gives every sender the same (zero) secret.
        let probe = x25519_dalek::StaticSecret::from([1; 32]);
        if !probe
            .diffie_hellman(&x25519_dalek::PublicKey::from(key))
            .was_contributory()
        {
            return Err(format!("recipient {s:?}: a low-order point, not a public key"));
        }
        Ok(Recipient(key))
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bech32_encode("age", &self.0))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

/// An age X25519 identity: a secret key, `AGE-SECRET-KEY-1…`. Its `Debug`
/// shows its recipient only; no error ever contains it.
#[derive(Clone)]
pub struct Identity {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS has randomness");
        Identity::from_bytes(bytes)
    }

    /// The identity whose X25519 secret scalar is `bytes` (for keys kept
    /// elsewhere, such as a KMS).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Identity { secret, public }
    }

    /// Parses `AGE-SECRET-KEY-1…`; the error never repeats the text.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = "an identity is not a valid AGE-SECRET-KEY-1… string";
        let (hrp, data) = bech32_decode(s.trim()).map_err(|_| bad.to_string())?;
        if hrp != "age-secret-key-" {
            return Err(bad.into());
        }
        Ok(Identity::from_bytes(
            <[u8; 32]>::try_from(data).map_err(|_| bad.to_string())?,
        ))
    }

    /// The identities of an identity file: one `AGE-SECRET-KEY-1…` per
    /// line; empty lines and lines starting with `#` are skipped. An error
    /// names the line, never its text.
    pub fn parse_file(text: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Identity::parse(line).map_err(|why| format!("line {}: {why}", i + 1))?);
        }
        if out.is_empty() {
            return Err("no AGE-SECRET-KEY-1… line".into());
        }
        Ok(out)
    }

    /// This identity's recipient (public key).
    pub fn recipient(&self) -> Recipient {
        Recipient(self.public)
    }

    /// The `AGE-SECRET-KEY-1…` text, for writing an identity file.
    pub fn to_secret_string(&self) -> String {
        bech32_encode("age-secret-key-", self.secret.as_bytes()).to_ascii_uppercase()
    }

    /// The file key of an X25519 stanza whose argument is `share`, if this
    /// identity is its recipient; `Err` for a low-order share, which the
    /// spec says must abort the decryption.
    fn unwrap(&self, share: &[u8; 32], body: &[u8]) -> Result<Option<[u8; FILE_KEY_LEN]>, Refusal> {
        let shared = self.secret.diffie_hellman(&x25519_dalek::PublicKey::from(*share));
        if !shared.was_contributory() {
            return Err(Refusal::Corrupt(
                "an X25519 stanza's share is a low-order point (an all-zero shared secret)".into(),
            ));
        }
        let key = hkdf32(
            shared.as_bytes(),
            &[share.as_slice(), &self.public].concat(),
            X25519_LABEL,
        );
        Ok(open_file_key(&key, body))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity(for {})", self.recipient())
    }
}

/// Who a new object is encrypted to.
pub(super) enum Seal {
    Recipients(Vec<Recipient>),
    Passphrase(std::sync::Arc<[u8]>, u8),
}

/// A new object's header (with its payload nonce) and payload key.
pub(super) fn seal(to: Seal) -> Result<(Vec<u8>, LessSafeKey), String> {
    let mut file_key = [0u8; FILE_KEY_LEN];
    random(&mut file_key)?;
    let mut h = INTRO.to_vec();
    match to {
        Seal::Recipients(rs) => {
            for r in &rs {
                let mut eph = [0u8; 32];
                random(&mut eph)?;
                let eph = x25519_dalek::StaticSecret::from(eph);
                let share = x25519_dalek::PublicKey::from(&eph).to_bytes();
                let shared = eph.diffie_hellman(&x25519_dalek::PublicKey::from(r.0));
                if !shared.was_contributory() {
                    return Err(format!("recipient {r} is a low-order point, not a public key"));
                }
                let key = hkdf32(shared.as_bytes(), &[share.as_slice(), &r.0].concat(), X25519_LABEL);
                stanza(&mut h, &["X25519", &B64.encode(share)], &seal_file_key(&key, &file_key));
            }
        }
        Seal::Passphrase(pass, log_n) => {
            if !(1..=MAX_WORK_FACTOR).contains(&log_n) {
                return Err(format!("scrypt work factor {log_n} is outside 1..={MAX_WORK_FACTOR}"));
            }
            let mut salt = [0u8; 16];
            random(&mut salt)?;
            let key = scrypt_key(&pass, &salt, log_n)?;
            stanza(
                &mut h,
                &["scrypt", &B64.encode(salt), &log_n.to_string()],
                &seal_file_key(&key, &file_key),
            );
        }
    }
    h.extend_from_slice(b"---");
    let mac = hmac::sign(&mac_key(&file_key), &h);
    h.push(b' ');
    h.extend_from_slice(B64.encode(mac.as_ref()).as_bytes());
    h.push(b'\n');
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    h.extend_from_slice(&nonce);
    Ok((h, payload_key(&file_key, &nonce)))
}

/// The length of what [`seal`] writes (header and payload nonce) for
/// `recipients` X25519 stanzas, or one scrypt stanza of `work_factor`.
pub(super) fn sealed_len(recipients: usize, work_factor: Option<u8>) -> usize {
    // A wrapped file key is 32 bytes: one 43-column body line.
    let body = 43 + 1;
    let stanzas = match work_factor {
        // "-> scrypt <22-column salt> <n>\n"
        Some(n) => "-> scrypt ".len() + 22 + 1 + n.to_string().len() + 1 + body,
        // "-> X25519 <43-column share>\n"
        None => recipients * ("-> X25519 ".len() + 43 + 1 + body),
    };
    // "--- <43-column MAC>\n"
    INTRO.len() + stanzas + 4 + 43 + 1 + NONCE_LEN
}

fn stanza(h: &mut Vec<u8>, args: &[&str], body: &[u8]) {
    h.extend_from_slice(b"->");
    for a in args {
        h.push(b' ');
        h.extend_from_slice(a.as_bytes());
    }
    h.push(b'\n');
    let text = B64.encode(body);
    let mut lines = text.as_bytes().chunks(COLUMNS).peekable();
    while let Some(line) = lines.next() {
        h.extend_from_slice(line);
        h.push(b'\n');
        if lines.peek().is_none() && line.len() == COLUMNS {
            // The last line of a body is always shorter than 64 columns.
            h.push(b'\n');
        }
    }
    if text.is_empty() {
        h.push(b'\n');
    }
}

/// One recipient stanza of a parsed header.
pub(super) struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

/// A parsed header: its stanzas, its MAC, and the lengths of what the MAC
/// covers and of the whole header with the payload nonce.
pub(super) struct Header {
    stanzas: Vec<Stanza>,
    mac: Vec<u8>,
    mac_input: usize,
    /// Header and payload nonce: where the first chunk starts.
    pub(super) len: usize,
}

/// Parses the header at the start of `b`: `Ok(None)` if `b` ends before
/// the header and payload nonce do (read more), `Err` if it is not an age
/// header. Accepts what age 1.x writes and parses, including stanzas of
/// unknown types (skipped when unwrapping).
pub(super) fn parse(b: &[u8]) -> Result<Option<Header>, String> {
    if b.len() < INTRO.len() {
        return if INTRO.starts_with(b) { Ok(None) } else { Err(not_age()) };
    }
    if !b.starts_with(INTRO) {
        return Err(not_age());
    }
    let mut at = INTRO.len();
    let mut stanzas: Vec<Stanza> = Vec::new();
    let mut open = false;
    loop {
        let Some(end) = b[at..].iter().position(|&c| c == b'\n') else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[at..at + end]).map_err(|_| "a header line is not text".to_string())?;
        let next = at + end + 1;
        if open {
            // A stanza's body ends with a line shorter than 64 columns
            // (possibly empty), before anything else.
            if line.starts_with("->") || line.starts_with("---") {
                return Err("a stanza ends without its final short body line".into());
            }
            if line.len() > COLUMNS {
                return Err("a stanza body line is longer than 64 columns".into());
            }
            let bytes = B64
                .decode(line)
                .map_err(|_| "a stanza body is not base64".to_string())?;
            stanzas.last_mut().expect("open").body.extend_from_slice(&bytes);
            open = line.len() == COLUMNS;
        } else if let Some(rest) = line.strip_prefix("---") {
            let mac = rest
                .strip_prefix(' ')
                .filter(|m| !m.contains(' '))
                .and_then(|m| B64.decode(m).ok())
                .filter(|m| m.len() == 32)
                .ok_or("the header's closing line is malformed")?;
            if stanzas.is_empty() {
                return Err("the header has no recipient stanza".into());
            }
            if b.len() < next + NONCE_LEN {
                return Ok(None);
            }
            return Ok(Some(Header {
                stanzas,
                mac,
                mac_input: at + 3,
                len: next + NONCE_LEN,
            }));
        } else if let Some(rest) = line.strip_prefix("->") {
            let mut parts = rest.split(' ');
            let (Some(""), Some(kind)) = (parts.next(), parts.next()) else {
                return Err("a stanza line is malformed".into());
            };
            let args: Vec<String> = parts.map(str::to_string).collect();
            let printable = |a: &str| !a.is_empty() && a.bytes().all(|c| (33..=126).contains(&c));
            if !printable(kind) || !args.iter().all(|a| printable(a)) {
                return Err("a stanza line is malformed".into());
            }
            stanzas.push(Stanza {
                kind: kind.to_string(),
                args,
                body: Vec::new(),
            });
            open = true;
        } else {
            return Err("the header has a line that is neither a stanza nor its closing line".into());
        }
        at = next;
        if at > MAX_HEADER {
            return Err(format!("the header is longer than {MAX_HEADER} bytes"));
        }
    }
}

/// The longest header read: about 650 X25519 recipients.
pub(super) const MAX_HEADER: usize = 64 << 10;

fn not_age() -> String {
    "the object is not in the age format (no age-encryption.org/v1 header): it was not written through this layer"
        .into()
}

/// Why a header could not be opened.
pub(super) enum Refusal {
    /// None of the identities (or the passphrase) is a recipient: a
    /// configuration matter.
    NotRecipient(String),
    /// The header or its MAC is wrong.
    Corrupt(String),
}

impl Header {
    /// Whether opening costs an scrypt.
    pub(super) fn is_scrypt(&self) -> bool {
        self.stanzas.iter().any(|s| s.kind == "scrypt")
    }

    /// The payload key, if one of `identities` (or `passphrase`) opens the
    /// header and its MAC checks.
    /// An scrypt stanza whose work factor is above `max_work_factor` is
    /// refused before any work (a `NotRecipient`: the reader's limit).
    pub(super) fn open(
        &self,
        b: &[u8],
        identities: &[Identity],
        passphrase: Option<&[u8]>,
        max_work_factor: u8,
    ) -> Result<LessSafeKey, Refusal> {
        let corrupt = |why: &str| Refusal::Corrupt(why.to_string());
        let scrypt = self.stanzas.iter().any(|s| s.kind == "scrypt");
        if scrypt && self.stanzas.len() != 1 {
            return Err(corrupt("an scrypt stanza must be the header's only stanza"));
        }
        let mut file_key = None;
        for s in &self.stanzas {
            match s.kind.as_str() {
                "X25519" => {
                    let share = match s.args.as_slice() {
                        [a] => B64.decode(a).ok().and_then(|v| <[u8; 32]>::try_from(v).ok()),
                        _ => None,
                    }
                    .ok_or_else(|| corrupt("an X25519 stanza is malformed"))?;
                    if s.body.len() != FILE_KEY_LEN + TAG as usize {
                        return Err(corrupt("an X25519 stanza's body is not a wrapped file key"));
                    }
                    for i in identities {
                        file_key = i.unwrap(&share, &s.body)?;
                        if file_key.is_some() {
                            break;
                        }
                    }
                }
                "scrypt" => {
                    let Some(pass) = passphrase else { continue };
                    let (salt, log_n) = match s.args.as_slice() {
                        [salt, n] => (
                            B64.decode(salt).ok().filter(|s| s.len() == 16),
                            n.parse::<u8>().ok().filter(|v| v.to_string() == *n && *v > 0),
                        ),
                        _ => (None, None),
                    };
                    let (Some(salt), Some(log_n)) = (salt, log_n) else {
                        return Err(corrupt("the scrypt stanza is malformed"));
                    };
                    if log_n > max_work_factor {
                        return Err(Refusal::NotRecipient(format!(
                            "its scrypt work factor {log_n} is above this layer's work_factor {max_work_factor}, the most it spends on a read (2^{log_n} KiB of memory); raise work_factor to read it"
                        )));
                    }
                    if s.body.len() != FILE_KEY_LEN + TAG as usize {
                        return Err(corrupt("the scrypt stanza's body is not a wrapped file key"));
                    }
                    let key = scrypt_key(pass, &salt, log_n).map_err(|w| corrupt(&w))?;
                    file_key = open_file_key(&key, &s.body);
                }
                _ => {}
            }
            if file_key.is_some() {
                break;
            }
        }
        let Some(file_key) = file_key else {
            let kinds: Vec<&str> = self.stanzas.iter().map(|s| s.kind.as_str()).collect();
            return Err(Refusal::NotRecipient(format!(
                "none of the {} configured identities{} opens it (its header has stanzas {kinds:?}): it was encrypted to other recipients, or the header was changed",
                identities.len(),
                if passphrase.is_some() {
                    " nor the passphrase"
                } else {
                    ""
                },
            )));
        };
        hmac::verify(&mac_key(&file_key), &b[..self.mac_input], &self.mac)
            .map_err(|_| corrupt("the header's MAC does not match: the header was changed"))?;
        let nonce: [u8; NONCE_LEN] = b[self.len - NONCE_LEN..self.len].try_into().expect("16 bytes");
        Ok(payload_key(&file_key, &nonce))
    }
}

/// The nonce of payload chunk `index`.
pub(super) fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = last as u8;
    Nonce::assume_unique_for_key(n)
}

fn random(b: &mut [u8]) -> Result<(), String> {
    getrandom::fill(b).map_err(|e| format!("no randomness: {e}"))
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(32))
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes is a valid HKDF-SHA-256 length");
    out
}

fn mac_key(file_key: &[u8; FILE_KEY_LEN]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &hkdf32(file_key, &[], b"header"))
}

fn payload_key(file_key: &[u8; FILE_KEY_LEN], nonce: &[u8; NONCE_LEN]) -> LessSafeKey {
    aead_key(&hkdf32(file_key, nonce, b"payload"))
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"))
}

fn seal_file_key(key: &[u8; 32], file_key: &[u8; FILE_KEY_LEN]) -> Vec<u8> {
    let mut out = file_key.to_vec();
    aead_key(key)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut out)
        .expect("16 bytes seal");
    out
}

fn open_file_key(key: &[u8; 32], body: &[u8]) -> Option<[u8; FILE_KEY_LEN]> {
    let mut b = body.to_vec();
    let plain = aead_key(key)
        .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut b)
        .ok()?;
    plain.try_into().ok()
}

fn scrypt_key(pass: &[u8], salt: &[u8], log_n: u8) -> Result<[u8; 32], String> {
    let params = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| format!("scrypt work factor {log_n}: {e}"))?;
    let mut out = [0u8; 32];
    scrypt::scrypt(pass, &[SCRYPT_LABEL, salt].concat(), &params, &mut out).map_err(|e| format!("scrypt: {e}"))?;
    Ok(out)
}

// Bech32 (BIP 173), as age uses it: its checksum constant 1 (not
// Bech32m), one case throughout, no length limit.
const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ v as u32;
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &str) -> impl Iterator<Item = u8> + '_ {
    hrp.bytes()
        .map(|c| c >> 5)
        .chain([0])
        .chain(hrp.bytes().map(|c| c & 31))
}

fn bech32_encode(hrp: &str, data: &[u8]) -> String {
    let mut five = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            five.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        five.push(((acc << (5 - bits)) & 31) as u8);
    }
    let chk = polymod(hrp_expand(hrp).chain(five.iter().copied()).chain([0; 6])) ^ 1;
    let mut s = format!("{hrp}1");
    s.extend(five.iter().map(|&v| CHARSET[v as usize] as char));
    s.extend((0..6).map(|i| CHARSET[((chk >> (5 * (5 - i))) & 31) as usize] as char));
    s
}

/// The (lowercase) human-readable part and data of a Bech32 string.
fn bech32_decode(s: &str) -> Result<(String, Vec<u8>), &'static str> {
    if s.bytes().any(|c| c.is_ascii_lowercase()) && s.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err("mixed case");
    }
    let s = s.to_ascii_lowercase();
    let sep = s.rfind('1').ok_or("no separator")?;
    let (hrp, rest) = (&s[..sep], &s[sep + 1..]);
    if hrp.is_empty() || rest.len() < 6 || !hrp.bytes().all(|c| (33..=126).contains(&c)) {
        return Err("malformed");
    }
    let five: Vec<u8> = rest
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
        .collect::<Option<_>>()
        .ok_or("not Bech32 characters")?;
    if polymod(hrp_expand(hrp).chain(five.iter().copied())) != 1 {
        return Err("bad checksum");
    }
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for &v in &five[..five.len() - 6] {
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 5 || acc & ((1 << bits) - 1) != 0 {
        return Err("bad padding");
    }
    Ok((hrp.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bech32_round_trips_and_refuses_changes() {
        let id = Identity::generate();
        let text = id.to_secret_string();
        assert!(text.starts_with("AGE-SECRET-KEY-1") && text.len() == 74, "{text}");
        let back = Identity::parse(&text).unwrap();
        assert_eq!(back.recipient(), id.recipient());
        let r = id.recipient().to_string();
        assert!(r.starts_with("age1") && r.len() == 62, "{r}");
        assert_eq!(Recipient::parse(&r).unwrap(), id.recipient());
        let mut changed = r.clone().into_bytes();
        changed[10] = if changed[10] == b'q' { b'p' } else { b'q' };
        assert!(Recipient::parse(std::str::from_utf8(&changed).unwrap()).is_err());
        assert!(Recipient::parse(&text).is_err(), "an identity is not a recipient");
        let e = Identity::parse(&r).unwrap_err();
        assert!(!e.contains(&r));
        let e = Identity::parse_file(&format!("# created: now\n\n{text}\nAGE-SECRET-KEY-1XYZ\n")).unwrap_err();
        assert!(e.starts_with("line 4") && !e.contains("XYZ"), "{e}");
        assert!(!format!("{id:?}").contains(&text[16..]));
    }

    /// A BIP 173 test vector, and the X25519 recipient of RFC 7748's
    /// Alice (the public key of her secret scalar).
    #[test]
    fn bech32_and_x25519_match_published_vectors() {
        assert!(bech32_decode("A12UEL5L").is_ok());
        assert!(bech32_decode("a12uel5l").is_ok());
        assert!(bech32_decode("A12uEL5L").is_err());
        let alice = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap();
        let id = Identity::from_bytes(alice.try_into().unwrap());
        assert_eq!(
            hex::encode(id.public),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn headers_seal_and_open() {
        let (a, b, c) = (Identity::generate(), Identity::generate(), Identity::generate());
        let rs = [a.recipient(), b.recipient()];
        let (h, _) = seal(Seal::Recipients(rs.to_vec())).unwrap();
        assert_eq!(h.len(), INTRO.len() + 2 * 98 + 48 + NONCE_LEN);
        assert!(parse(&h[..h.len() - 1]).unwrap().is_none());
        let header = parse(&h).unwrap().unwrap();
        assert_eq!(header.len, h.len());
        assert!(header.open(&h, std::slice::from_ref(&b), None, 18).is_ok());
        assert!(matches!(header.open(&h, &[c], None, 18), Err(Refusal::NotRecipient(_))));
        let mut changed = h.clone();
        changed[INTRO.len() + 5] ^= 1; // the first stanza's share: b still opens it
        let header = parse(&changed).unwrap().unwrap();
        assert!(matches!(
            header.open(&changed, &[b], None, 18),
            Err(Refusal::Corrupt(_))
        ));
        assert!(parse(b"age-encryption.org/v2\n").is_err());
        assert!(parse(b"age-enc").unwrap().is_none());

        let (h, _) = seal(Seal::Passphrase(b"pw".as_slice().into(), 4)).unwrap();
        let header = parse(&h).unwrap().unwrap();
        assert!(header.open(&h, &[], Some(b"pw"), 18).is_ok());
        assert!(matches!(
            header.open(&h, &[], Some(b"other"), 18),
            Err(Refusal::NotRecipient(_))
        ));
    }

    /// What the spec's grammar and rules refuse (found in review): a
    /// stanza body without its final short line, a low-order share or
    /// recipient, an scrypt work factor above the reader's limit.
    #[test]
    fn header_rules_of_the_spec() {
        let id = Identity::generate();
        let (h, _) = seal(Seal::Recipients(vec![id.recipient()])).unwrap();
        let text = std::str::from_utf8(&h[..h.len() - NONCE_LEN]).unwrap().to_string();
        let (stanza_end, rest) = text.split_at(text.find("---").unwrap());
        let with = |extra: &str| [stanza_end.as_bytes(), extra.as_bytes(), rest.as_bytes(), &[0; 16]].concat();
        // An unknown stanza with a proper body is fine; without one, not.
        let ok = with("-> foo bar\n\n");
        assert!(parse(&ok).unwrap().is_some());
        for bad in ["-> foo\n", &format!("-> foo\n{}\n", "A".repeat(64))] {
            let e = parse(&with(bad)).err().expect(bad);
            assert!(e.contains("final short body line"), "{e}");
        }
        // An all-zero share: abort, not "not a recipient".
        let zero = B64.encode([0u8; 32]);
        let body = B64.encode([0u8; 32]);
        let low = with(&format!("-> X25519 {zero}\n{body}\n"));
        let header = parse(&low).unwrap().unwrap();
        assert!(matches!(header.open(&low, &[id], None, 18), Err(Refusal::Corrupt(_))));
        let low_recipient = bech32_encode("age", &[0; 32]);
        assert!(Recipient::parse(&low_recipient).unwrap_err().contains("low-order"));

        let (h, _) = seal(Seal::Passphrase(b"pw".as_slice().into(), 12)).unwrap();
        let header = parse(&h).unwrap().unwrap();
        let e = header.open(&h, &[], Some(b"pw"), 11).err().unwrap();
        assert!(matches!(e, Refusal::NotRecipient(w) if w.contains("work factor 12")));
        assert!(seal(Seal::Passphrase(b"pw".as_slice().into(), 0)).is_err());
    }
}
