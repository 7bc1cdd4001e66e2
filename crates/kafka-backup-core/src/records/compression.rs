//! Compression codecs of record batch v2 (attributes bits 0-2): none, gzip, snappy, lz4, zstd.
//! Decompression is always capped; snappy accepts both raw blocks and the xerial framing Java uses.

use std::io::{Read, Write};

use super::RecordsError;

/// Upper bound on one decompressed batch. A batch is at most the broker's `message.max.bytes`
/// (1 MiB by default, rarely above 100 MiB), so 256 MiB leaves room for any sane ratio while
/// stopping a hostile or corrupt "zip bomb" from taking the process's memory.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// The codec of a record batch, with the numeric ids of the Kafka protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records stored as they are.
    None,
    /// Gzip (RFC 1952), possibly several concatenated members.
    Gzip,
    /// Snappy, raw or in xerial framing (written in xerial framing, like the Java client).
    Snappy,
    /// LZ4 frame format with independent blocks.
    Lz4,
    /// Zstandard frames.
    Zstd,
}

/// Magic bytes opening xerial snappy-java framing: `0x82 "SNAPPY" 0x00`.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Header: magic, version (i32), minimum compatible version (i32).
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed block size of the xerial stream the Java producer writes.
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// zstd level used when the caller does not choose one: zstd's own default.
const ZSTD_DEFAULT_LEVEL: i32 = 3;

impl Compression {
    /// Codec from the three low bits of batch attributes.
    pub fn from_attributes(attributes: i16) -> Result<Self, RecordsError> {
        let id = attributes & 0x07;
        Self::from_id(id).ok_or(RecordsError::UnknownCompression(id as u8))
    }

    /// The codec whose id (as batch attributes and segment headers store it) is `id`.
    pub fn from_id(id: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The codec id as stored in batch attributes.
    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Lower-case name as Kafka spells it (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// The codec Kafka names `name` (`compression.type`), or what names exist.
    pub fn from_name(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| format!("unknown codec {name:?}; expected zstd, lz4, gzip, snappy or none"))
    }

    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// The levels the codec accepts, for codecs that have levels.
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Self::Zstd => Some((1, 22)),
            Self::Gzip => Some((0, 9)),
            Self::None | Self::Snappy | Self::Lz4 => None,
        }
    }

    /// Compresses `input` with this codec's default settings.
    pub fn compress(self, input: &[u8]) -> Result<Vec<u8>, RecordsError> {
        self.compress_with_level(input, None)
    }

    /// Compresses `input` at `level` (see [`Compression::level_range`]; ignored by codecs
    /// without levels, `None` for the codec's default).
    pub fn compress_with_level(self, input: &[u8], level: Option<i32>) -> Result<Vec<u8>, RecordsError> {
        let mut compressor = self.compressor(level, Vec::with_capacity(input.len() / 2))?;
        compressor.write(input)?;
        compressor.finish()
    }

    /// A streaming compressor that appends to `out` (whose existing bytes are kept, so a caller
    /// can reserve room for a header in front).
    pub fn compressor(self, level: Option<i32>, out: Vec<u8>) -> Result<Compressor, RecordsError> {
        let io_error = |source| RecordsError::Compress { codec: self.name(), source };
        let inner = match self {
            Self::None => Inner::None(out),
            Self::Gzip => {
                let level = level.map_or_else(flate2::Compression::default, |l| flate2::Compression::new(l as u32));
                Inner::Gzip(flate2::write::GzEncoder::new(out, level))
            }
            Self::Snappy => Inner::Snappy(Box::new(XerialWriter::new(out))),
            Self::Lz4 => Inner::Lz4(lz4_flex::frame::FrameEncoder::new(out)),
            Self::Zstd => Inner::Zstd(
                zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_DEFAULT_LEVEL)).map_err(io_error)?,
            ),
        };
        Ok(Compressor { codec: self, inner })
    }

    /// Decompresses `input`, failing if the output would exceed `cap` bytes.
    pub fn decompress(self, input: &[u8], cap: usize) -> Result<Vec<u8>, RecordsError> {
        let mut out = Vec::new();
        self.decompress_into(input, &mut out, cap)?;
        Ok(out)
    }

    /// Decompresses `input` onto the end of `out`, failing if the output would exceed `cap` bytes.
    /// A caller that knows the size reserves it in `out` first: nothing is then reallocated, and
    /// zstd decodes in one pass straight into `out`, without a streaming window buffer.
    pub fn decompress_into(self, input: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<(), RecordsError> {
        let start = out.len();
        match self {
            Self::None => out.extend_from_slice(input),
            Self::Gzip => read_capped(self, flate2::read::MultiGzDecoder::new(input), cap, out)?,
            Self::Snappy => snappy_decompress(input, cap, out)?,
            Self::Lz4 => read_capped(self, lz4_flex::frame::FrameDecoder::new(input), cap, out)?,
            Self::Zstd if out.capacity() - start >= cap => {
                // Appends after `start`; fails when the frames hold more than the room reserved.
                let mut after_start = std::io::Cursor::new(&mut *out);
                after_start.set_position(start as u64);
                zstd::bulk::Decompressor::new()
                    .and_then(|mut decompressor| decompressor.decompress_to_buffer(input, &mut after_start))
                    .map_err(|source| RecordsError::Decompress { codec: "zstd", source })?;
            }
            Self::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(input)
                    .map_err(|source| RecordsError::Decompress { codec: "zstd", source })?;
                read_capped(self, decoder, cap, out)?;
            }
        }
        if out.len() - start > cap {
            return Err(RecordsError::DecompressedTooLarge { codec: self.name(), cap });
        }
        Ok(())
    }
}

fn read_capped(codec: Compression, reader: impl Read, cap: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    reader
        .take(cap as u64 + 1)
        .read_to_end(out)
        .map_err(|source| RecordsError::Decompress { codec: codec.name(), source })?;
    Ok(())
}

fn snappy_error(message: impl Into<String>) -> RecordsError {
    RecordsError::Decompress {
        codec: "snappy",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message.into()),
    }
}

fn snappy_decompress(input: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let start = out.len();
    if input.starts_with(XERIAL_MAGIC) {
        if input.len() < XERIAL_HEADER_LEN {
            return Err(snappy_error("xerial header is truncated"));
        }
        let mut rest = &input[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            let (len_bytes, after) =
                rest.split_first_chunk::<4>().ok_or_else(|| snappy_error("xerial block length is truncated"))?;
            let block_len = u32::from_be_bytes(*len_bytes) as usize;
            if block_len > after.len() {
                return Err(snappy_error(format!("xerial block of {block_len} bytes but only {} remain", after.len())));
            }
            snappy_block(&after[..block_len], start, cap, out)?;
            rest = &after[block_len..];
        }
    } else {
        snappy_block(input, start, cap, out)?;
    }
    Ok(())
}

/// Decodes one raw snappy block onto `out`, refusing to hold more than `cap` bytes after `start`.
fn snappy_block(block: &[u8], start: usize, cap: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let len = snap::raw::decompress_len(block).map_err(|e| snappy_error(e.to_string()))?;
    if out.len() - start + len > cap {
        return Err(RecordsError::DecompressedTooLarge { codec: "snappy", cap });
    }
    let end = out.len();
    out.resize(end + len, 0);
    snap::raw::Decoder::new().decompress(block, &mut out[end..]).map_err(|e| snappy_error(e.to_string()))?;
    Ok(())
}

/// Compresses data written to it in pieces, into one output buffer.
pub struct Compressor {
    codec: Compression,
    inner: Inner,
}

enum Inner {
    None(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Snappy(Box<XerialWriter>),
    Lz4(lz4_flex::frame::FrameEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn error(&self, source: std::io::Error) -> RecordsError {
        RecordsError::Compress { codec: self.codec.name(), source }
    }

    /// Compresses `data` onto the output.
    pub fn write(&mut self, data: &[u8]) -> Result<(), RecordsError> {
        let result = match &mut self.inner {
            Inner::None(out) => {
                out.extend_from_slice(data);
                Ok(())
            }
            Inner::Gzip(encoder) => encoder.write_all(data),
            Inner::Snappy(writer) => writer.write(data),
            Inner::Lz4(encoder) => encoder.write_all(data),
            Inner::Zstd(encoder) => encoder.write_all(data),
        };
        result.map_err(|e| self.error(e))
    }

    /// Ends the stream and returns the output buffer.
    pub fn finish(self) -> Result<Vec<u8>, RecordsError> {
        let codec = self.codec.name();
        let error = |source| RecordsError::Compress { codec, source };
        match self.inner {
            Inner::None(out) => Ok(out),
            Inner::Gzip(encoder) => encoder.finish().map_err(error),
            Inner::Snappy(writer) => writer.finish().map_err(error),
            Inner::Lz4(encoder) => encoder.finish().map_err(|e| error(std::io::Error::other(e))),
            Inner::Zstd(encoder) => encoder.finish().map_err(error),
        }
    }
}

/// Snappy in xerial framing, written block by block.
struct XerialWriter {
    out: Vec<u8>,
    pending: Vec<u8>,
    encoder: snap::raw::Encoder,
}

impl XerialWriter {
    fn new(mut out: Vec<u8>) -> Self {
        out.extend_from_slice(XERIAL_MAGIC);
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        Self { out, pending: Vec::with_capacity(XERIAL_BLOCK_LEN), encoder: snap::raw::Encoder::new() }
    }

    fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let take = (XERIAL_BLOCK_LEN - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == XERIAL_BLOCK_LEN {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        let compressed = self.encoder.compress_vec(&self.pending).map_err(std::io::Error::other)?;
        self.out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        self.out.extend_from_slice(&compressed);
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Vec<u8>> {
        if !self.pending.is_empty() {
            self.flush_block()?;
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn raw_snappy_from_librdkafka_style_producers_is_accepted() {
        let data = b"hello hello hello hello raw snappy".repeat(50);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw, 1 << 20).unwrap(), data);
    }

    #[test]
    fn xerial_framing_spans_several_blocks() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let framed = Compression::Snappy.compress(&data).unwrap();
        assert!(framed.starts_with(XERIAL_MAGIC));
        assert_eq!(Compression::Snappy.decompress(&framed, 1 << 20).unwrap(), data);
    }

    #[test]
    fn output_beyond_the_cap_is_refused_for_every_codec() {
        let data = vec![0u8; 100_000];
        for codec in Compression::ALL.into_iter().skip(1) {
            let compressed = codec.compress(&data).unwrap();
            let error = codec.decompress(&compressed, 99_999).unwrap_err();
            assert!(matches!(error, RecordsError::DecompressedTooLarge { cap: 99_999, .. }), "{codec:?}: {error}");
            assert_eq!(codec.decompress(&compressed, 100_000).unwrap(), data);
        }
    }

    #[test]
    fn decompressing_into_a_reserved_buffer_appends_in_place_and_keeps_the_cap() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 89) as u8).collect();
        for codec in Compression::ALL {
            let compressed = codec.compress(&data).unwrap();
            let mut out = Vec::with_capacity(4 + data.len());
            out.extend_from_slice(b"keep");
            let address = out.as_ptr();
            codec.decompress_into(&compressed, &mut out, data.len()).unwrap();
            assert_eq!((&out[..4], &out[4..]), (&b"keep"[..], &data[..]), "{codec:?}");
            assert_eq!(out.as_ptr(), address, "{codec:?}: decoded in place, not reallocated");

            // Room beyond the cap (a pooled buffer is often larger) does not lift the cap.
            let mut roomy = Vec::with_capacity(2 * data.len());
            assert!(codec.decompress_into(&compressed, &mut roomy, data.len() - 1).is_err(), "{codec:?}");
            // Too little room reserved for zstd's one pass: an error, never a partial success.
            let mut tight = Vec::with_capacity(data.len() - 1);
            assert!(codec.decompress_into(&compressed, &mut tight, data.len() - 1).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn garbage_input_is_an_error_naming_the_codec() {
        for codec in Compression::ALL.into_iter().skip(1) {
            let error = codec.decompress(b"definitely not compressed", 1 << 20).unwrap_err();
            assert!(error.to_string().contains(codec.name()), "{error}");
        }
    }

    #[test]
    fn codec_ids_follow_the_protocol() {
        for codec in Compression::ALL {
            assert_eq!(Compression::from_attributes(codec.id() | 0x18).unwrap(), codec);
        }
        assert!(Compression::from_attributes(5).is_err());
    }

    #[test]
    fn streaming_in_pieces_equals_one_shot_and_keeps_a_reserved_prefix() {
        let data: Vec<u8> = (0..90_000u32).map(|i| (i % 97) as u8).collect();
        for codec in Compression::ALL {
            let mut compressor = codec.compressor(None, vec![7u8; 4]).unwrap();
            for piece in data.chunks(10_007) {
                compressor.write(piece).unwrap();
            }
            let out = compressor.finish().unwrap();
            assert_eq!(&out[..4], &[7, 7, 7, 7], "{codec:?}");
            assert_eq!(codec.decompress(&out[4..], data.len()).unwrap(), data, "{codec:?}");
        }
    }

    proptest! {
        #[test]
        fn every_codec_round_trips(data in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            for codec in Compression::ALL {
                let compressed = codec.compress(&data).unwrap();
                prop_assert_eq!(&codec.decompress(&compressed, data.len()).unwrap(), &data);
            }
        }
    }
}
