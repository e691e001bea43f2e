//! How objects travel to and from the bucket: zstd-compressed, named as such in the object's
//! metadata, with their uncompressed length.
//!
//! Build outputs compress about 3× at zstd's fastest level, and a build from the bucket is
//! bound by bytes moved, so every upload is compressed (in the background upload worker, never
//! on a build's path). Decompression is bounded by the recorded length, so a damaged or hostile
//! object cannot make the daemon allocate without limit, and the BLAKE3 check that follows is
//! on the decompressed bytes: the codec can lose an object (a miss), never change one.
//! Objects without the metadata (older uploads, or copied in by hand) are taken as they are.

/// The metadata name (`x-amz-meta-encoding`) and the only value written.
pub const ENCODING_META: &str = "encoding";
pub const ZSTD: &str = "zstd";
/// The metadata name (`x-amz-meta-size`) of the uncompressed length.
pub const SIZE_META: &str = "size";
/// zstd level: the fastest, which already gets most of the ratio on rlibs.
const LEVEL: i32 = 1;

/// Why a fetched object could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown encoding {0:?}")]
    Unknown(String),
    #[error("compressed object without a valid size")]
    NoSize,
    #[error("the compressed bytes do not decode to the recorded size: {0}")]
    Corrupt(String),
}

/// Compresses `bytes` for upload.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, LEVEL).expect("compressing to memory cannot fail")
}

/// Undoes [`pack`] given the object's `encoding` and `size` metadata (as stored).
pub fn unpack(bytes: Vec<u8>, encoding: Option<&str>, size: Option<&str>) -> Result<Vec<u8>, CodecError> {
    match encoding {
        None => Ok(bytes),
        Some(ZSTD) => {
            let size: usize = size.and_then(|s| s.parse().ok()).ok_or(CodecError::NoSize)?;
            let out = zstd::bulk::decompress(&bytes, size).map_err(|e| CodecError::Corrupt(e.to_string()))?;
            if out.len() != size {
                return Err(CodecError::Corrupt(format!("{} bytes, {size} recorded", out.len())));
            }
            Ok(out)
        }
        Some(other) => Err(CodecError::Unknown(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn build_outputs_shrink_and_come_back_whole() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let packed = pack(&data);
        assert!(packed.len() * 3 < data.len(), "{} of {}", packed.len(), data.len());
        assert_eq!(unpack(packed, Some(ZSTD), Some(&data.len().to_string())).unwrap(), data);
    }

    #[test]
    fn a_wrong_size_or_damaged_bytes_or_unknown_encoding_are_errors_never_other_bytes() {
        let data = vec![7u8; 10_000];
        let packed = pack(&data);
        assert!(unpack(packed.clone(), Some(ZSTD), Some("9999")).is_err(), "shorter than recorded");
        assert!(unpack(packed.clone(), Some(ZSTD), Some("10001")).is_err(), "longer than recorded");
        assert_eq!(unpack(packed.clone(), Some(ZSTD), None), Err(CodecError::NoSize));
        assert!(matches!(unpack(packed.clone(), Some("br"), Some("10000")), Err(CodecError::Unknown(_))));
        let mut cut = packed.clone();
        cut.truncate(cut.len() / 2);
        assert!(unpack(cut, Some(ZSTD), Some("10000")).is_err());
        assert_eq!(unpack(b"raw".to_vec(), None, None).unwrap(), b"raw", "no metadata: taken as is");
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let n = data.len().to_string();
            prop_assert_eq!(unpack(pack(&data), Some(ZSTD), Some(&n)).unwrap(), data);
        }
    }
}
