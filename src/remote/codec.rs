//! How objects travel to and from the bucket: zstd-compressed, named as such in the object's
//! metadata, with their uncompressed length.
//!
//! Build outputs compress about 3× at zstd's fastest level, and a build from the bucket is
//! bound by bytes moved, so every upload is compressed (in the background upload worker, never
//! on a build's path). Decompression is bounded by the recorded length, and a recorded length
//! (or a raw object) beyond the cache's limit is refused before anything is allocated, so a
//! damaged or hostile object cannot make the daemon allocate without limit (the decoder
//! allocates the recorded length up front: 2^60 aborted the process), and the BLAKE3 check that follows is
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
    /// The object says (or is) larger than any object this cache can hold: refused before
    /// anything is allocated for it.
    #[error("{size} bytes, more than the {max} an object of this cache can be")]
    TooLarge { size: u64, max: u64 },
}

/// Compresses `bytes` for upload.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, LEVEL).expect("compressing to memory cannot fail")
}

/// Undoes [`pack`] given the object's `encoding` and `size` metadata (as stored). `max` is the
/// largest object the cache can hold: anyone who can write the bucket writes the metadata, and
/// the decoder allocates the recorded size up front, so a larger size is refused first.
pub fn unpack(bytes: Vec<u8>, encoding: Option<&str>, size: Option<&str>, max: u64) -> Result<Vec<u8>, CodecError> {
    match encoding {
        None if bytes.len() as u64 > max => Err(CodecError::TooLarge { size: bytes.len() as u64, max }),
        None => Ok(bytes),
        Some(ZSTD) => {
            let size: u64 = size.and_then(|s| s.parse().ok()).ok_or(CodecError::NoSize)?;
            if size > max {
                return Err(CodecError::TooLarge { size, max });
            }
            let size = usize::try_from(size).map_err(|_| CodecError::TooLarge { size, max })?;
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
        assert_eq!(unpack(packed, Some(ZSTD), Some(&data.len().to_string()), u64::MAX).unwrap(), data);
    }

    #[test]
    fn a_wrong_size_or_damaged_bytes_or_unknown_encoding_are_errors_never_other_bytes() {
        let data = vec![7u8; 10_000];
        let packed = pack(&data);
        assert!(unpack(packed.clone(), Some(ZSTD), Some("9999"), 1 << 20).is_err(), "shorter than recorded");
        assert!(unpack(packed.clone(), Some(ZSTD), Some("10001"), 1 << 20).is_err(), "longer than recorded");
        assert_eq!(unpack(packed.clone(), Some(ZSTD), None, 1 << 20), Err(CodecError::NoSize));
        assert!(matches!(unpack(packed.clone(), Some("br"), Some("10000"), 1 << 20), Err(CodecError::Unknown(_))));
        let mut cut = packed.clone();
        cut.truncate(cut.len() / 2);
        assert!(unpack(cut, Some(ZSTD), Some("10000"), 1 << 20).is_err());
        assert_eq!(unpack(b"raw".to_vec(), None, None, 1 << 20).unwrap(), b"raw", "no metadata: taken as is");
    }

    /// A writer of the bucket can put any size in the metadata; the decoder would allocate it
    /// up front (and abort the daemon) if it were not refused first.
    #[test]
    fn a_recorded_size_beyond_the_cache_limit_is_refused_before_decoding() {
        let packed = pack(&[1u8; 1000]);
        let huge = (1u64 << 60).to_string();
        assert_eq!(
            unpack(packed.clone(), Some(ZSTD), Some(&huge), 1 << 30),
            Err(CodecError::TooLarge { size: 1 << 60, max: 1 << 30 })
        );
        assert!(matches!(unpack(vec![0; 2048], None, None, 1024), Err(CodecError::TooLarge { .. })));
        assert_eq!(unpack(packed, Some(ZSTD), Some("1000"), 1000).unwrap(), vec![1u8; 1000], "at the limit: fine");
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let n = data.len().to_string();
            prop_assert_eq!(unpack(pack(&data), Some(ZSTD), Some(&n), 4096).unwrap(), data);
        }
    }
}
