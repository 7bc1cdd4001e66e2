//! Zig-zag variable-length integers of the Kafka record format (protobuf style, LEB128 groups).
//! Spec: Kafka protocol guide "Record" section; `varint` fields are 32-bit, `varlong` 64-bit.

use super::RecordsError;

/// Reads a zig-zag varint that must fit in 32 bits (at most 5 bytes).
pub fn read_varint(buf: &mut &[u8], field: &'static str) -> Result<i32, RecordsError> {
    let raw = read_unsigned(buf, 5, field)?;
    let raw = u32::try_from(raw).map_err(|_| RecordsError::VarintOverflow { field })?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag varlong (at most 10 bytes).
pub fn read_varlong(buf: &mut &[u8], field: &'static str) -> Result<i64, RecordsError> {
    let raw = read_unsigned(buf, 10, field)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(buf: &mut &[u8], max_bytes: usize, field: &'static str) -> Result<u64, RecordsError> {
    let mut value: u64 = 0;
    for index in 0..max_bytes {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(RecordsError::Truncated { field });
        };
        *buf = rest;
        let shift = 7 * index as u32;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(RecordsError::VarintOverflow { field });
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordsError::VarintOverflow { field })
}

/// Appends a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends a zig-zag varlong.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn write_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encoded size of a zig-zag varint, for sizing buffers before writing.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Encoded size of a zig-zag varlong.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors_match_the_protobuf_zigzag_encoding() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i64::MAX, &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            (i64::MIN, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            write_varlong(&mut out, *value);
            assert_eq!(&out[..], *bytes, "encoding {value}");
            let mut input = *bytes;
            assert_eq!(read_varlong(&mut input, "test").unwrap(), *value);
            assert!(input.is_empty());
        }
    }

    #[test]
    fn a_varint_wider_than_32_bits_is_rejected() {
        let mut out = Vec::new();
        write_varlong(&mut out, i64::from(i32::MAX) + 1);
        let mut input = &out[..];
        assert!(matches!(
            read_varint(&mut input, "offsetDelta"),
            Err(RecordsError::VarintOverflow { field: "offsetDelta" })
        ));
    }

    #[test]
    fn an_unterminated_varint_is_truncated_not_a_panic() {
        let mut input: &[u8] = &[0x80, 0x80];
        assert!(matches!(read_varlong(&mut input, "timestampDelta"), Err(RecordsError::Truncated { .. })));
        let mut eleven: &[u8] = &[0xff; 11];
        assert!(read_varlong(&mut eleven, "x").is_err());
    }

    proptest! {
        #[test]
        fn varint_round_trips(value in any::<i32>()) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            let mut input = &out[..];
            prop_assert_eq!(read_varint(&mut input, "v").unwrap(), value);
            prop_assert!(input.is_empty());
        }

        #[test]
        fn varlong_round_trips(value in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, value);
            prop_assert_eq!(out.len(), varlong_len(value));
            let mut input = &out[..];
            prop_assert_eq!(read_varlong(&mut input, "v").unwrap(), value);
            prop_assert!(input.is_empty());
        }
    }
}
