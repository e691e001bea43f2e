//! REAPI digests: lowercase hex SHA-256 and length. The engines cairn talks to take SHA-256
//! only (BuildGrid, Buildbarn and BuildBuddy by default), so blobs sent to an engine carry
//! these beside cairn's own BLAKE3 keys.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::proto::Digest;

/// The digest of `bytes`.
pub fn of(bytes: &[u8]) -> Digest {
    let h = Sha256::digest(bytes);
    Digest { hash: hex(&h), size_bytes: bytes.len() as i64 }
}

/// The digest of a file's contents, read in pieces.
pub fn of_file(path: &Path) -> io::Result<Digest> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok(Digest { hash: hex(&h.finalize()), size_bytes: len as i64 })
}

/// The digest of a message's encoding (and the encoding, to upload).
pub fn of_message(m: &impl prost::Message) -> (Digest, Vec<u8>) {
    let bytes = m.encode_to_vec();
    (of(&bytes), bytes)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_blob_has_the_well_known_digest() {
        let d = of(b"");
        assert_eq!(d.hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(d.size_bytes, 0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(of_file(&p).unwrap(), of(b"abc"));
        assert_eq!(of(b"abc").hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
