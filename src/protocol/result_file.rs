//! A result read from its object's file (the descriptor the daemon hands over): checked
//! against its checksum a chunk at a time, its header and its small payloads read into memory,
//! and the payloads a front end copies file to file left in the file. A hit on a 50 MB binary
//! then costs no 50 MB buffer: it was a fresh mapping, faulted in, filled by `read`, hashed,
//! then written out again (rustc/mod.rs `restore` copies it with `copy_file_range` instead).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::object::{read_result_table, EntryMeta, FileAt, FileView, ObjectError, ResultView};

/// How much is hashed at once.
const CHUNK: usize = 64 << 10;

/// A result object read from its file.
#[derive(Debug)]
pub struct ResultFile {
    file: File,
    size: u64,
    meta: EntryMeta,
    /// Each output, with its bytes when they were read into memory.
    files: Vec<(FileAt, Option<Vec<u8>>)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl ResultFile {
    /// Checks the object in `file` against its checksum and reads it, leaving in the file the
    /// outputs for which `leave(name)` says so.
    pub fn read(file: File, leave: &dyn Fn(&str) -> bool) -> Result<ResultFile, ObjectError> {
        let size = file.metadata().map_err(|_| ObjectError::Decode)?.len();
        if size < 48 {
            return Err(ObjectError::BadMagic);
        }
        check_sum(&file, size)?;
        let t = read_result_table(&file)?;
        let read = |off: u64, len: u64| -> Result<Vec<u8>, ObjectError> {
            let mut buf = vec![0u8; usize::try_from(len).map_err(|_| ObjectError::Decode)?];
            file.read_exact_at(&mut buf, off).map_err(|_| ObjectError::Decode)?;
            Ok(buf)
        };
        let mut files = Vec::with_capacity(t.files.len());
        for at in t.files {
            let bytes = if leave(&at.name) { None } else { Some(read(at.offset, at.len)?) };
            files.push((at, bytes));
        }
        let stdout = read(t.stdout_at, t.stdout_len)?;
        let stderr = read(t.stdout_at + t.stdout_len, t.stderr_len)?;
        Ok(ResultFile { file, size, meta: t.meta, files, stdout, stderr })
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The result, its payloads borrowed from memory or pointing into the file.
    pub fn view(&self) -> ResultView<'_> {
        ResultView {
            meta: self.meta.clone(),
            files: self
                .files
                .iter()
                .map(|(at, bytes)| FileView {
                    name: at.name.clone(),
                    mode: at.mode,
                    hash: at.hash,
                    bytes: bytes.as_deref().unwrap_or_default(),
                    at: bytes.is_none().then_some((at.offset, at.len)),
                })
                .collect(),
            stdout: &self.stdout,
            stderr: &self.stderr,
            source: Some(&self.file),
        }
    }
}

/// Whether the trailing checksum is the BLAKE3 of everything before it.
fn check_sum(file: &File, size: u64) -> Result<(), ObjectError> {
    let body = size - 32;
    let mut hasher = blake3::Hasher::new();
    let mut buf = [0u8; CHUNK];
    let mut off = 0u64;
    while off < body {
        let want = ((body - off) as usize).min(CHUNK);
        file.read_exact_at(&mut buf[..want], off).map_err(|_| ObjectError::Decode)?;
        hasher.update(&buf[..want]);
        off += want as u64;
    }
    let mut sum = [0u8; 32];
    file.read_exact_at(&mut sum, body).map_err(|_| ObjectError::Decode)?;
    if *hasher.finalize().as_bytes() != sum {
        return Err(ObjectError::Checksum);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::object::{Body, CompileResult, OutputFile};

    fn stored(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let r = CompileResult {
            meta: EntryMeta { crate_name: "x".into(), ..EntryMeta::default() },
            files: vec![
                OutputFile { name: "x.d".into(), mode: 0o644, hash: [1; 32], body: Body::Bytes(b"x.d: a\n".to_vec()) },
                OutputFile { name: "x".into(), mode: 0o755, hash: [2; 32], body: Body::Bytes(big.clone()) },
            ],
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        };
        let p = dir.join("obj");
        std::fs::write(&p, r.encode().unwrap()).unwrap();
        (p, big)
    }

    #[test]
    fn the_file_reads_as_the_bytes_decode_with_payloads_left_where_asked() {
        let d = tempfile::tempdir().unwrap();
        let (p, big) = stored(d.path());
        let bytes = std::fs::read(&p).unwrap();
        let decoded = CompileResult::decode(&bytes).unwrap();
        let rf = ResultFile::read(File::open(&p).unwrap(), &|name| name == "x").unwrap();
        assert_eq!(rf.size(), bytes.len() as u64);
        let v = rf.view();
        assert_eq!((v.meta.clone(), v.stdout, v.stderr), (decoded.meta.clone(), decoded.stdout, decoded.stderr));
        assert_eq!(v.files[0], decoded.files[0], "the dep-info in memory");
        let (off, len) = v.files[1].at.expect("left in the file");
        assert!(v.files[1].bytes.is_empty());
        let mut left = vec![0u8; len as usize];
        v.source.unwrap().read_exact_at(&mut left, off).unwrap();
        assert_eq!(left, big);
    }

    #[test]
    fn a_damaged_or_truncated_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (p, _) = stored(d.path());
        let bytes = std::fs::read(&p).unwrap();
        for at in [0, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            std::fs::write(&p, &b).unwrap();
            assert!(ResultFile::read(File::open(&p).unwrap(), &|_| true).is_err(), "flipped at {at}");
        }
        for len in [0, 47, 100, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..len]).unwrap();
            assert!(ResultFile::read(File::open(&p).unwrap(), &|_| true).is_err(), "cut to {len}");
        }
    }
}
