//! The sealed-object format of encrypted backups: AES-256-GCM over 64 KiB chunks, under a key derived
//! per object (HKDF from the backup's data key and a random salt), with the object's key bound in.
//!
//! ```text
//! "KBE1" | salt (32 bytes) | chunk 0 | chunk 1 | ... | final chunk
//! chunk = AES-256-GCM(plaintext of CHUNK bytes, the final one 0..=CHUNK) + 16-byte tag
//! nonce = chunk index (8 bytes, big-endian) | 0 0 0 | 1 on the final chunk, else 0
//! associated data = the object's key inside its backup (e.g. "topics/t/partition=0/segment-...")
//! ```
//!
//! Every chunk is authenticated at its position: a flipped byte, a reordered chunk, an object moved
//! to another key or cut after any chunk fails to open. The plaintext length follows from the sealed
//! length alone (sizes are checkable without the key), and any byte range is read by opening only
//! the chunks it covers. The AEAD is ring's, the framing (STREAM-like) is this module's.

use bytes::Bytes;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Format marker at the start of every sealed object.
const MAGIC: &[u8; 4] = b"KBE1";
const SALT_LEN: usize = 32;
/// Bytes before the first chunk.
pub(crate) const HEADER_LEN: u64 = (MAGIC.len() + SALT_LEN) as u64;
/// Plaintext bytes per chunk.
pub(crate) const CHUNK: u64 = 64 * 1024;
const TAG_LEN: u64 = 16;
const SEALED_CHUNK: u64 = CHUNK + TAG_LEN;
const OBJECT_KEY_INFO: &[u8] = b"kafka-backup object key v1";

/// A sealed object that does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not the sealed format, or a length no sealed object has.
    #[error("not an encrypted kafka-backup object ({0})")]
    Format(&'static str),
    /// A chunk failed authentication.
    #[error("chunk {0} fails authentication: the object was altered, truncated, or moved from another key")]
    Tampered(u64),
    /// A range beyond the object's end.
    #[error("range {start}..{end} is beyond the object's {length} bytes")]
    OutOfRange {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// Plaintext length.
        length: u64,
    },
}

/// Plaintext length of a sealed object of `sealed` bytes, `None` if no sealed object has that length.
pub(crate) fn plain_len(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(HEADER_LEN)?;
    let (full, rest) = (body / SEALED_CHUNK, body % SEALED_CHUNK);
    match rest {
        0 if full > 0 => Some(full * CHUNK),
        rest if rest >= TAG_LEN && (full == 0 || rest > TAG_LEN) => Some(full * CHUNK + rest - TAG_LEN),
        _ => None,
    }
}

/// The chunks of an object of `plain` bytes (the final one may be empty only when it is the only one).
fn chunk_count(plain: u64) -> u64 {
    plain.div_ceil(CHUNK).max(1)
}

/// The sealed byte range holding plaintext `range` (whole chunks; the store clamps the last one).
pub(crate) fn sealed_range(range: &std::ops::Range<u64>) -> std::ops::Range<u64> {
    let first = range.start / CHUNK;
    let last = range.end.saturating_sub(1).max(range.start) / CHUNK;
    HEADER_LEN + first * SEALED_CHUNK..HEADER_LEN + (last + 1) * SEALED_CHUNK
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[11] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

/// One object's cipher: its derived key and the object key it is bound to.
pub(crate) struct ObjectCipher {
    key: LessSafeKey,
    bound_to: String,
}

impl ObjectCipher {
    fn derive(data_key: &[u8; 32], salt: &[u8], bound_to: &str) -> Self {
        let prk = Salt::new(HKDF_SHA256, salt).extract(data_key);
        let okm = prk.expand(&[OBJECT_KEY_INFO], &AES_256_GCM).expect("32 bytes is within HKDF-SHA256's output limit");
        Self { key: LessSafeKey::new(UnboundKey::from(okm)), bound_to: bound_to.to_string() }
    }

    fn seal_chunk(&self, index: u64, last: bool, plain: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(index, last), Aad::from(self.bound_to.as_bytes()), &mut out[start..])
            .expect("a chunk is far below AES-GCM's message limit");
        out.extend_from_slice(tag.as_ref());
    }

    /// Opens the sealed chunks in `body` (the first has index `first`, the object's last `last`)
    /// in place: the plaintext is packed at the start of `body`, which is cut to its length.
    fn open_in_place(&self, first: u64, last: u64, body: &mut Vec<u8>) -> Result<(), SealError> {
        let (mut read, mut written, mut index) = (0usize, 0usize, first);
        while read < body.len() {
            let end = (read + SEALED_CHUNK as usize).min(body.len());
            let aad = Aad::from(self.bound_to.as_bytes());
            let plain = self
                .key
                .open_within(nonce(index, index == last), aad, &mut body[written..end], read - written..)
                .map_err(|_| SealError::Tampered(index))?;
            written += plain.len();
            read = end;
            index += 1;
        }
        body.truncate(written);
        Ok(())
    }
}

/// Seals an object as it is produced: bytes are pushed, sealed bytes come out chunk by chunk.
pub(crate) struct Sealer {
    cipher: ObjectCipher,
    next_index: u64,
    /// Plaintext not sealed yet: up to one chunk, kept until it is known whether more follows.
    pending: Vec<u8>,
}

impl Sealer {
    /// Starts sealing an object bound to `bound_to`; returns the sealer and the object's header.
    pub(crate) fn start(data_key: &[u8; 32], bound_to: &str) -> (Self, Vec<u8>) {
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new().fill(&mut salt).expect("the system random generator works");
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&salt);
        let sealer =
            Self { cipher: ObjectCipher::derive(data_key, &salt, bound_to), next_index: 0, pending: Vec::new() };
        (sealer, header)
    }

    /// Adds `bytes`; returns the chunks completed (all but the last full one, which may be final).
    pub(crate) fn push(&mut self, mut bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + bytes.len() / CHUNK as usize * TAG_LEN as usize + 64);
        while !bytes.is_empty() {
            if self.pending.len() == CHUNK as usize {
                self.cipher.seal_chunk(self.next_index, false, &self.pending, &mut out);
                self.next_index += 1;
                self.pending.clear();
            }
            let take = bytes.len().min(CHUNK as usize - self.pending.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        out
    }

    /// Seals the final chunk.
    pub(crate) fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pending.len() + TAG_LEN as usize);
        self.cipher.seal_chunk(self.next_index, true, &self.pending, &mut out);
        out
    }
}

/// Seals a whole object.
pub(crate) fn seal(data_key: &[u8; 32], bound_to: &str, plain: &[u8]) -> Vec<u8> {
    let (mut sealer, mut out) = Sealer::start(data_key, bound_to);
    out.extend(sealer.push(plain));
    out.extend(sealer.finish());
    out
}

fn cipher_of(data_key: &[u8; 32], bound_to: &str, header: &[u8]) -> Result<ObjectCipher, SealError> {
    match header.strip_prefix(MAGIC.as_slice()) {
        Some(salt) if salt.len() == SALT_LEN => Ok(ObjectCipher::derive(data_key, salt, bound_to)),
        _ => Err(SealError::Format("its header is not an encrypted kafka-backup header")),
    }
}

/// Opens a whole sealed object.
pub(crate) fn open(data_key: &[u8; 32], bound_to: &str, sealed: &[u8]) -> Result<Bytes, SealError> {
    let length = plain_len(sealed.len() as u64).ok_or(SealError::Format("its length is not a sealed length"))?;
    let cipher = cipher_of(data_key, bound_to, &sealed[..HEADER_LEN as usize])?;
    let mut body = sealed[HEADER_LEN as usize..].to_vec();
    cipher.open_in_place(0, chunk_count(length) - 1, &mut body)?;
    Ok(Bytes::from(body))
}

/// Opens plaintext `range` of a sealed object of `sealed_len` bytes, given its `header` and the
/// sealed bytes of [`sealed_range`] (clamped to the object's end).
pub(crate) fn open_range(
    data_key: &[u8; 32],
    bound_to: &str,
    header: &[u8],
    sealed_len: u64,
    range: std::ops::Range<u64>,
    chunks: &[u8],
) -> Result<Bytes, SealError> {
    let length = plain_len(sealed_len).ok_or(SealError::Format("its length is not a sealed length"))?;
    if range.end > length || range.start > range.end {
        return Err(SealError::OutOfRange { start: range.start, end: range.end, length });
    }
    let cipher = cipher_of(data_key, bound_to, header)?;
    let first = range.start / CHUNK;
    let mut body = chunks.to_vec();
    cipher.open_in_place(first, chunk_count(length) - 1, &mut body)?;
    let skip = (range.start - first * CHUNK) as usize;
    let wanted = (range.end - range.start) as usize;
    if body.len() < skip + wanted {
        return Err(SealError::Format("the store returned fewer bytes than the range covers"));
    }
    Ok(Bytes::from(body).slice(skip..skip + wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_length_round_trips_and_its_sealed_length_gives_it_back() {
        let c = CHUNK as usize;
        for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 17] {
            let sealed = seal(&KEY, "a/b", &plain(len));
            assert_eq!(plain_len(sealed.len() as u64), Some(len as u64), "length {len}");
            assert_eq!(open(&KEY, "a/b", &sealed).unwrap(), plain(len), "length {len}");
        }
    }

    #[test]
    fn lengths_no_sealed_object_has_are_refused() {
        for sealed in [0, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + TAG_LEN - 1, HEADER_LEN + SEALED_CHUNK + TAG_LEN] {
            assert_eq!(plain_len(sealed), None, "sealed length {sealed}");
        }
    }

    #[test]
    fn pushing_in_pieces_seals_like_one_push() {
        let data = plain(3 * CHUNK as usize + 5);
        let (mut sealer, mut out) = Sealer::start(&KEY, "k");
        for piece in data.chunks(10_000) {
            out.extend(sealer.push(piece));
        }
        out.extend(sealer.finish());
        assert_eq!(open(&KEY, "k", &out).unwrap(), data);
    }

    #[test]
    fn any_range_opens_from_only_the_chunks_it_covers() {
        let data = plain(3 * CHUNK as usize + 100);
        let sealed = seal(&KEY, "k", &data);
        let c = CHUNK;
        for range in [0..0, 0..1, 5..c, c - 1..c + 1, c..2 * c, 10..3 * c + 100, 3 * c + 99..3 * c + 100] {
            let wanted = sealed_range(&range);
            let chunks = &sealed[wanted.start as usize..(wanted.end as usize).min(sealed.len())];
            let header = &sealed[..HEADER_LEN as usize];
            let opened = open_range(&KEY, "k", header, sealed.len() as u64, range.clone(), chunks).unwrap();
            assert_eq!(opened, data[range.start as usize..range.end as usize], "range {range:?}");
        }
        let beyond = open_range(&KEY, "k", &sealed[..36], sealed.len() as u64, 0..3 * c + 101, &[]);
        assert!(matches!(beyond, Err(SealError::OutOfRange { .. })));
    }

    #[test]
    fn a_flipped_byte_a_wrong_key_another_object_key_or_a_cut_fail_to_open() {
        let sealed = seal(&KEY, "k", &plain(2 * CHUNK as usize + 3));
        for at in [40, HEADER_LEN as usize + SEALED_CHUNK as usize + 1, sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 1;
            assert!(open(&KEY, "k", &flipped).is_err(), "flip at {at}");
        }
        assert_eq!(open(&[8; 32], "k", &sealed), Err(SealError::Tampered(0)));
        assert_eq!(open(&KEY, "other", &sealed), Err(SealError::Tampered(0)));
        // Cut after the first two chunks: the length is valid, but chunk 1 was not sealed as the last.
        let cut = &sealed[..(HEADER_LEN + 2 * SEALED_CHUNK) as usize];
        assert_eq!(open(&KEY, "k", cut), Err(SealError::Tampered(1)));
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER_LEN as usize, (HEADER_LEN + SEALED_CHUNK) as usize);
        let first: Vec<u8> = swapped[a..b].to_vec();
        swapped.copy_within(b..b + SEALED_CHUNK as usize, a);
        swapped[b..b + SEALED_CHUNK as usize].copy_from_slice(&first);
        assert_eq!(open(&KEY, "k", &swapped), Err(SealError::Tampered(0)));
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        assert_ne!(seal(&KEY, "k", b"same"), seal(&KEY, "k", b"same"));
    }
}
