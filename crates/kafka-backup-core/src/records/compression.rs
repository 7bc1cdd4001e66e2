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
        match attributes & 0x07 {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(RecordsError::UnknownCompression(other as u8)),
        }
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
        let io_error = |source| RecordsError::Compress { codec: self.name(), source };
        match self {
            Self::None => Ok(input.to_vec()),
            Self::Gzip => {
                let level = level.map_or_else(flate2::Compression::default, |l| flate2::Compression::new(l as u32));
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
                encoder.write_all(input).map_err(io_error)?;
                encoder.finish().map_err(io_error)
            }
            Self::Snappy => xerial_compress(input)
                .map_err(|source| RecordsError::Compress { codec: "snappy", source: std::io::Error::other(source) }),
            Self::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
                encoder.write_all(input).map_err(io_error)?;
                encoder.finish().map_err(|e| io_error(std::io::Error::other(e)))
            }
            Self::Zstd => zstd::stream::encode_all(input, level.unwrap_or(ZSTD_DEFAULT_LEVEL)).map_err(io_error),
        }
    }

    /// Decompresses `input`, failing if the output would exceed `cap` bytes.
    pub fn decompress(self, input: &[u8], cap: usize) -> Result<Vec<u8>, RecordsError> {
        match self {
            Self::None => Ok(input.to_vec()),
            Self::Gzip => read_capped(self, flate2::read::MultiGzDecoder::new(input), cap),
            Self::Snappy => snappy_decompress(input, cap),
            Self::Lz4 => read_capped(self, lz4_flex::frame::FrameDecoder::new(input), cap),
            Self::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(input)
                    .map_err(|source| RecordsError::Decompress { codec: "zstd", source })?;
                read_capped(self, decoder, cap)
            }
        }
    }
}

fn read_capped(codec: Compression, reader: impl Read, cap: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| RecordsError::Decompress { codec: codec.name(), source })?;
    if out.len() > cap {
        return Err(RecordsError::DecompressedTooLarge { codec: codec.name(), cap });
    }
    Ok(out)
}

fn snappy_error(message: impl Into<String>) -> RecordsError {
    RecordsError::Decompress {
        codec: "snappy",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message.into()),
    }
}

fn snappy_decompress(input: &[u8], cap: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
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
            snappy_block(&after[..block_len], cap, &mut out)?;
            rest = &after[block_len..];
        }
    } else {
        snappy_block(input, cap, &mut out)?;
    }
    Ok(out)
}

fn snappy_block(block: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let len = snap::raw::decompress_len(block).map_err(|e| snappy_error(e.to_string()))?;
    if out.len() + len > cap {
        return Err(RecordsError::DecompressedTooLarge { codec: "snappy", cap });
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| snappy_error(e.to_string()))?;
    Ok(())
}

fn xerial_compress(input: &[u8]) -> Result<Vec<u8>, snap::Error> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_LEN) {
        let compressed = encoder.compress_vec(chunk)?;
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(out)
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
