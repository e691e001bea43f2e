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

use std::io::{self, Write};

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
    /// The sink failed (a full local disk): not the object's fault.
    #[error("writing the fetched object: {0}")]
    Write(String),
}

/// Compresses `bytes` for upload.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, LEVEL).expect("compressing to memory cannot fail")
}

/// Undoes [`pack`] given the object's `encoding` and `size` metadata (as stored), in memory.
/// `max` is the largest object the cache can hold. See [`Unpacker`].
pub fn unpack(bytes: Vec<u8>, encoding: Option<&str>, size: Option<&str>, max: u64) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let mut u = Unpacker::new(&mut out, encoding, size, max)?;
    u.write(&bytes)?;
    u.finish()?;
    Ok(out)
}

/// Undoes [`pack`] as the bytes arrive, writing the object's own bytes to a sink, so a fetch
/// holds one chunk in memory, never the object. Anyone who can write the bucket writes the
/// metadata, so nothing is trusted: a recorded size beyond `max` is refused before a byte is
/// decoded, more bytes than recorded stop the decoder at once, and fewer are an error at
/// [`finish`](Self::finish).
pub struct Unpacker<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Raw(Limited<'a>),
    Zstd(zstd::stream::write::Decoder<'static, Limited<'a>>, u64),
}

const OVER: &str = "more bytes than the object can have";

/// A sink that takes at most `limit` bytes.
struct Limited<'a> {
    out: &'a mut dyn Write,
    written: u64,
    limit: u64,
    /// Set when the sink itself failed (not the limit).
    sink_error: Option<String>,
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other(OVER));
        }
        let n = self.out.write(buf).inspect_err(|e| self.sink_error = Some(e.to_string()))?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<'a> Unpacker<'a> {
    /// Starts decoding an object with this `encoding` and recorded `size` into `out`.
    pub fn new(
        out: &'a mut dyn Write,
        encoding: Option<&str>,
        size: Option<&str>,
        max: u64,
    ) -> Result<Unpacker<'a>, CodecError> {
        let size = match encoding {
            None => None,
            Some(ZSTD) => {
                let size: u64 = size.and_then(|s| s.parse().ok()).ok_or(CodecError::NoSize)?;
                if size > max {
                    return Err(CodecError::TooLarge { size, max });
                }
                Some(size)
            }
            Some(other) => return Err(CodecError::Unknown(other.to_string())),
        };
        let limited = Limited { out, written: 0, limit: size.unwrap_or(max), sink_error: None };
        let inner = match size {
            None => Inner::Raw(limited),
            Some(size) => Inner::Zstd(
                zstd::stream::write::Decoder::new(limited).map_err(|e| CodecError::Corrupt(e.to_string()))?,
                size,
            ),
        };
        Ok(Unpacker { inner })
    }

    /// Takes the next bytes of the stored object.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), CodecError> {
        match &mut self.inner {
            Inner::Raw(w) => w.write_all(chunk).map_err(|e| match error(w, e) {
                CodecError::Corrupt(m) if m == OVER => CodecError::TooLarge { size: w.written + 1, max: w.limit },
                other => other,
            }),
            Inner::Zstd(d, size) => {
                let size = *size;
                d.write_all(chunk).map_err(|e| match error(d.get_mut(), e) {
                    CodecError::Corrupt(m) if m == OVER => {
                        CodecError::Corrupt(format!("more than the {size} bytes recorded"))
                    }
                    other => other,
                })
            }
        }
    }

    /// Ends the object; returns its length.
    pub fn finish(self) -> Result<u64, CodecError> {
        match self.inner {
            Inner::Raw(w) => Ok(w.written),
            Inner::Zstd(mut d, size) => {
                d.flush().map_err(|e| CodecError::Corrupt(e.to_string()))?;
                let w = d.into_inner();
                if let Some(e) = w.sink_error {
                    return Err(CodecError::Write(e));
                }
                if w.written != size {
                    return Err(CodecError::Corrupt(format!("{} bytes, {size} recorded", w.written)));
                }
                Ok(size)
            }
        }
    }
}

/// Tells a failed sink from bytes that were refused or could not be decoded.
fn error(w: &Limited<'_>, e: io::Error) -> CodecError {
    match &w.sink_error {
        Some(s) => CodecError::Write(s.clone()),
        None => CodecError::Corrupt(e.to_string()),
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

    #[test]
    fn chunks_decode_as_they_arrive_and_never_pass_the_recorded_size() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let packed = pack(&data);
        let mut out = Vec::new();
        let mut u = Unpacker::new(&mut out, Some(ZSTD), Some(&data.len().to_string()), 1 << 20).unwrap();
        for chunk in packed.chunks(1000) {
            u.write(chunk).unwrap();
        }
        assert_eq!(u.finish().unwrap(), data.len() as u64);
        assert_eq!(out, data);
        // Recorded as 1000 bytes: the sink gets at most 1000, then the decoder stops.
        let mut out = Vec::new();
        let mut u = Unpacker::new(&mut out, Some(ZSTD), Some("1000"), 1 << 20).unwrap();
        let refused = packed.chunks(1000).map(|c| u.write(c)).find(|r| r.is_err());
        assert!(matches!(refused, Some(Err(CodecError::Corrupt(_)))), "{refused:?}");
        drop(u);
        assert!(out.len() <= 1000);
        // A raw object past the cache limit is refused at the limit.
        let mut out = Vec::new();
        let mut u = Unpacker::new(&mut out, None, None, 10).unwrap();
        assert!(matches!(u.write(&[0; 11]), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn a_failing_sink_is_told_apart_from_a_bad_object() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Full;
        let mut u = Unpacker::new(&mut sink, None, None, 1 << 20).unwrap();
        assert!(matches!(u.write(b"abc"), Err(CodecError::Write(_))));
        let packed = pack(&[3u8; 100_000]);
        let mut sink = Full;
        let mut u = Unpacker::new(&mut sink, Some(ZSTD), Some("100000"), 1 << 20).unwrap();
        let r = u.write(&packed).and_then(|()| u.finish().map(|_| ()));
        assert!(matches!(r, Err(CodecError::Write(_))), "{r:?}");
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let n = data.len().to_string();
            prop_assert_eq!(unpack(pack(&data), Some(ZSTD), Some(&n), 4096).unwrap(), data);
        }
    }
}
