//! The two kinds of objects the wrapper keeps in the mount, and their byte format.
//!
//! A manifest is `MAGIC ++ bincode(body) ++ blake3(everything before)`. A result is
//! `MAGIC ++ u64 header length ++ bincode(header) ++ file bytes… ++ stdout ++ stderr ++
//! blake3(everything before)`: the header is small and the payloads are raw, so a hit decodes
//! them as slices of the bytes read, with no copy (decoding megabytes of `Vec<u8>` through
//! serde byte by byte was a quarter of a hit's time). The trailing checksum is verified before
//! anything is decoded, so a damaged object is a miss, never a wrong artifact — whatever the
//! mount below did or did not check.
//!
//! - A **result** holds everything one compile produced: the files it wrote into `--out-dir`
//!   (with their modes), its stdout and stderr, how long it took, and metadata that tells a
//!   person what the entry is.
//! - A **manifest** lists, for one base key, the sets of source files and environment
//!   variables earlier compiles depended on. It is only a hint of *what to hash*: the result
//!   key is always recomputed from the current contents, so a stale manifest can cause a miss
//!   but never a wrong hit.

use serde::{Deserialize, Serialize};

const RESULT_MAGIC: &[u8; 8] = b"CAIRNR04";
const MANIFEST_MAGIC: &[u8; 8] = b"CAIRNM02";
const BUILD_SET_MAGIC: &[u8; 8] = b"CAIRNB02";
/// Build sets as the first version wrote them (keys only, no ages); still read.
const BUILD_SET_MAGIC_V1: &[u8; 8] = b"CAIRNB01";

/// Why an object could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("not a cairn object of this kind or version")]
    BadMagic,
    #[error("checksum mismatch (damaged object)")]
    Checksum,
    #[error("undecodable object body")]
    Decode,
}

/// What a person (and `cairn stats`) wants to know about a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub crate_name: String,
    pub crate_types: Vec<String>,
    pub target: String,
    pub rustc_version: String,
    /// How long the compile took, in nanoseconds.
    pub compile_ns: u64,
    /// When it was stored, seconds since the epoch.
    pub created_unix: u64,
    /// The `--out-dir` it was compiled into; paths under it are rewritten on restore.
    pub out_dir: String,
    /// rustc's exit code. Failed compiles that wrote their dep-info are stored too (build
    /// scripts probe the compiler with code that is meant to fail), and replayed as failures.
    pub exit_code: i32,
    /// The roots it was compiled under, (placeholder, path) (basedir.rs); paths under them
    /// are rewritten to this build's roots on restore.
    pub roots: Vec<(String, String)>,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// File name inside `--out-dir`.
    pub name: String,
    pub mode: u32,
    /// BLAKE3 of the bytes, so a restored file's hash can be remembered without hashing it
    /// again (see filehash.rs).
    pub hash: [u8; 32],
    pub body: Body,
}

/// Where an output file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// In memory.
    Bytes(Vec<u8>),
    /// Still in the file the tool wrote, as it was when its hash was taken: read once more as
    /// the object is written, and refused if it changed since (result_writer.rs). A compile's
    /// outputs are never whole in memory.
    File { path: std::path::PathBuf, stamp: FileStamp },
}

impl Body {
    /// How many bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { stamp, .. } => stamp.len,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, for a body in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Body::Bytes(b) => Some(b),
            Body::File { .. } => None,
        }
    }
}

/// What a file was when it was read: which file, its length and its modification time. Any
/// rewrite changes one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileStamp {
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        }
    }
}

/// A compile to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileResult {
    pub meta: EntryMeta,
    pub files: Vec<OutputFile>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A stored compile, borrowing its payloads from the object's bytes (or, read from the
/// object's file, leaving some of them there: result_file.rs).
#[derive(Debug)]
pub struct ResultView<'a> {
    pub meta: EntryMeta,
    pub files: Vec<FileView<'a>>,
    pub stdout: &'a [u8],
    pub stderr: &'a [u8],
    /// The object's file, where payloads left out of memory are ([`FileView::at`]).
    pub source: Option<&'a std::fs::File>,
}

/// One output file of a [`ResultView`].
#[derive(Debug, PartialEq, Eq)]
pub struct FileView<'a> {
    pub name: String,
    pub mode: u32,
    pub hash: [u8; 32],
    /// The payload, when it is in memory; empty when it was left in the object's file.
    pub bytes: &'a [u8],
    /// Where the payload is in the object's file ([`ResultView::source`]) and how long, when
    /// it was left there, to be copied file to file. Only front ends that ask for it get it
    /// (`FrontEnd::restores_from_file`).
    pub at: Option<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    meta: EntryMeta,
    /// (name, mode, hash, length) of each file, in payload order.
    files: Vec<(String, u32, [u8; 32], u64)>,
    stdout_len: u64,
    stderr_len: u64,
}

/// One set of dependencies seen for a base key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub files: Vec<String>,
    pub env: Vec<String>,
}

/// The dependency sets seen for one base key, newest first, and the results last stored
/// under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub variants: Vec<Variant>,
    /// Result keys last stored under this base key, newest first. Only a prefetch hint for a
    /// mount with a remote tier (fetch these along with the manifest: they are probably the
    /// next lookup); the wrapper never uses them to decide a hit.
    pub recent: Vec<crate::key::Key>,
}

/// How many dependency sets a manifest keeps.
pub const MAX_VARIANTS: usize = 4;
/// How many recent result keys a manifest names.
pub const MAX_RECENT: usize = 2;

impl Manifest {
    /// Puts `v` first, dropping duplicates and the oldest beyond [`MAX_VARIANTS`].
    pub fn push_front(&mut self, v: Variant) {
        self.variants.retain(|x| *x != v);
        self.variants.insert(0, v);
        self.variants.truncate(MAX_VARIANTS);
    }

    /// Puts `key` first among the recent results.
    pub fn push_result(&mut self, key: crate::key::Key) {
        self.recent.retain(|k| *k != key);
        self.recent.insert(0, key);
        self.recent.truncate(MAX_RECENT);
    }
}

/// The keys an object suggests fetching next: a manifest's recent results, a build set's keys,
/// a seed set's units and the results they name;
/// nothing for any other bytes (or a damaged object).
pub fn prefetch_hints(bytes: &[u8]) -> Vec<crate::key::Key> {
    if bytes.starts_with(MANIFEST_MAGIC) {
        Manifest::decode(bytes).map(|m| m.recent).unwrap_or_default()
    } else if bytes.starts_with(BUILD_SET_MAGIC) || bytes.starts_with(BUILD_SET_MAGIC_V1) {
        BuildSet::decode(bytes).map(|s| s.keys).unwrap_or_default()
    } else if let Ok(set) = super::seed::SeedSet::decode(bytes) {
        // A fresh runner's seed: every unit object and the results they name, at once, the
        // biggest units first (the restore takes them in the same order), so that the last
        // fetch to end is a small one.
        let mut entries = set.entries;
        entries.sort_by_key(|e| std::cmp::Reverse(e.bytes));
        entries.into_iter().flat_map(|e| e.refs.into_iter().chain(std::iter::once(e.key))).collect()
    } else {
        Vec::new()
    }
}

/// The keys the recent builds of one workspace (with one toolchain and profile) looked up, in
/// the order they first did: manifests and results. Stored under the set's key
/// ([`build_set_key`]), it lets a machine that starts a build fetch them all at once, before
/// each compile asks (issue #12).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSet {
    pub keys: Vec<crate::key::Key>,
    /// For each key, how many builds ago it was last used (0: by the build that wrote the set).
    /// A key unused for more than [`MAX_BUILD_SET_AGE`] builds leaves the set, so a fresh
    /// machine does not fetch what old commits needed.
    pub ages: Vec<u8>,
}

#[derive(Deserialize)]
struct BuildSetV1 {
    keys: Vec<crate::key::Key>,
}

/// Most keys a build set keeps (a 4,000-crate build's manifests and results).
pub const MAX_BUILD_SET: usize = 8192;

/// How many builds a key stays in a set without being used again: enough for the builds of
/// part of a workspace (`cargo build -p`, CI jobs that split it) to keep each other's keys.
pub const MAX_BUILD_SET_AGE: u8 = 8;

impl BuildSet {
    /// The object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(BUILD_SET_MAGIC, self)
    }
    /// Checks and decodes an object (either version; the first one's keys count as new).
    pub fn decode(bytes: &[u8]) -> Result<BuildSet, ObjectError> {
        if bytes.starts_with(BUILD_SET_MAGIC_V1) {
            let v1: BuildSetV1 = decode(BUILD_SET_MAGIC_V1, bytes)?;
            return Ok(BuildSet { ages: vec![0; v1.keys.len()], keys: v1.keys });
        }
        let s: BuildSet = decode(BUILD_SET_MAGIC, bytes)?;
        if s.ages.len() != s.keys.len() {
            return Err(ObjectError::Decode);
        }
        Ok(s)
    }

    /// Each key with its age.
    pub fn aged(&self) -> impl Iterator<Item = (crate::key::Key, u8)> + '_ {
        self.keys.iter().copied().zip(self.ages.iter().copied())
    }
}

/// The key of a build set: the toolchain, the profile and the checkout's folder name. All three
/// are the same for teammates and CI runners that build the same project, whatever the paths
/// above the checkout. Two projects that share a folder name share a set: they prefetch each
/// other's keys, which costs bandwidth, never correctness.
pub fn build_set_key(toolchain: &[u8; 32], profile: &str, checkout_name: &str) -> crate::key::Key {
    let mut h = blake3::Hasher::new();
    h.update(b"cairn build set v1\0");
    h.update(toolchain);
    h.update(profile.as_bytes());
    h.update(b"\0");
    h.update(checkout_name.as_bytes());
    crate::key::Key(*h.finalize().as_bytes())
}

pub(crate) fn encode<T: Serialize>(magic: &[u8; 8], body: &T) -> Vec<u8> {
    let mut out = magic.to_vec();
    bincode::serialize_into(&mut out, body).expect("serializing to memory cannot fail");
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(magic: &[u8; 8], bytes: &[u8]) -> Result<T, ObjectError> {
    if bytes.len() < 40 || &bytes[..8] != magic {
        return Err(ObjectError::BadMagic);
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(ObjectError::Checksum);
    }
    bincode::deserialize(&body[8..]).map_err(|_| ObjectError::Decode)
}

impl CompileResult {
    /// The object's bytes, in memory (result_writer.rs writes them as a stream). Fails only
    /// where an output still in its file cannot be read or changed since it was hashed.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let mut w = self.writer()?;
        let mut out = Vec::with_capacity(w.len() as usize);
        w.write_to(&mut out)?;
        Ok(out)
    }

    /// The header: the metadata and, for each payload, its name, mode, hash and length.
    pub(crate) fn header_bytes(&self) -> Vec<u8> {
        let header = Header {
            meta: self.meta.clone(),
            files: self.files.iter().map(|f| (f.name.clone(), f.mode, f.hash, f.body.len())).collect(),
            stdout_len: self.stdout.len() as u64,
            stderr_len: self.stderr.len() as u64,
        };
        bincode::serialize(&header).expect("serializing to memory cannot fail")
    }

    /// `RESULT_MAGIC`.
    pub(crate) fn magic() -> &'static [u8; 8] {
        RESULT_MAGIC
    }

    /// Checks an object's checksum and decodes it without copying its payloads.
    pub fn decode(bytes: &[u8]) -> Result<ResultView<'_>, ObjectError> {
        if bytes.len() < 48 || &bytes[..8] != RESULT_MAGIC {
            return Err(ObjectError::BadMagic);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(ObjectError::Checksum);
        }
        let hlen = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")) as usize;
        let header_bytes =
            body.get(16..16usize.checked_add(hlen).ok_or(ObjectError::Decode)?).ok_or(ObjectError::Decode)?;
        let header: Header = bincode::deserialize(header_bytes).map_err(|_| ObjectError::Decode)?;
        let mut rest = &body[16 + hlen..];
        let mut take = |n: u64| -> Result<&[u8], ObjectError> {
            let n = usize::try_from(n).map_err(|_| ObjectError::Decode)?;
            if n > rest.len() {
                return Err(ObjectError::Decode);
            }
            let (a, b) = rest.split_at(n);
            rest = b;
            Ok(a)
        };
        let mut files = Vec::with_capacity(header.files.len());
        for (name, mode, hash, len) in header.files {
            files.push(FileView { name, mode, hash, bytes: take(len)?, at: None });
        }
        let stdout = take(header.stdout_len)?;
        let stderr = take(header.stderr_len)?;
        if !rest.is_empty() {
            return Err(ObjectError::Decode);
        }
        Ok(ResultView { meta: header.meta, files, stdout, stderr, source: None })
    }
}

/// One output file of a stored result as found in its file: name, mode, BLAKE3, length and
/// the offset of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAt {
    pub name: String,
    pub mode: u32,
    pub hash: [u8; 32],
    pub len: u64,
    pub offset: u64,
}

/// Reads a result's file table from a file the daemon has checked against its checksum (the
/// whole object), without reading the payloads, so a unit restore can copy one output file
/// to file (engine/seed/restore.rs). The lengths must add up to the file's.
pub fn read_result_files(f: &std::fs::File) -> Result<Vec<FileAt>, ObjectError> {
    read_result_table(f).map(|t| t.files)
}

/// A result's header as read from its file, with where each payload is.
pub(crate) struct ResultTable {
    pub meta: EntryMeta,
    pub files: Vec<FileAt>,
    /// Where stdout starts; stderr follows it, then the checksum.
    pub stdout_at: u64,
    pub stdout_len: u64,
    pub stderr_len: u64,
}

/// [`read_result_files`], with the metadata and where stdout and stderr are.
pub(crate) fn read_result_table(f: &std::fs::File) -> Result<ResultTable, ObjectError> {
    let (head, mut at, size) = read_framed_header(f, RESULT_MAGIC)?;
    let header: Header = bincode::deserialize(&head).map_err(|_| ObjectError::Decode)?;
    let mut files = Vec::with_capacity(header.files.len());
    for (name, mode, hash, len) in header.files {
        files.push(FileAt { name, mode, hash, len, offset: at });
        at = at.checked_add(len).ok_or(ObjectError::Decode)?;
    }
    let end = [header.stdout_len, header.stderr_len, 32].iter().try_fold(at, |a, n| a.checked_add(*n));
    if end != Some(size) {
        return Err(ObjectError::Decode);
    }
    Ok(ResultTable {
        meta: header.meta,
        files,
        stdout_at: at,
        stdout_len: header.stdout_len,
        stderr_len: header.stderr_len,
    })
}

/// The header of an object laid out as `MAGIC ++ u64 header length ++ header ++ payloads… ++
/// checksum` (results, units), read from its file: the header's bytes, where the payloads
/// start, and the file's size.
pub(crate) fn read_framed_header(f: &std::fs::File, magic: &[u8; 8]) -> Result<(Vec<u8>, u64, u64), ObjectError> {
    use std::os::unix::fs::FileExt;
    let size = f.metadata().map_err(|_| ObjectError::Decode)?.len();
    let mut lead = [0u8; 16];
    f.read_exact_at(&mut lead, 0).map_err(|_| ObjectError::BadMagic)?;
    if &lead[..8] != magic {
        return Err(ObjectError::BadMagic);
    }
    let hlen = u64::from_le_bytes(lead[8..16].try_into().expect("8 bytes"));
    if hlen > size {
        return Err(ObjectError::Decode);
    }
    let mut head = vec![0u8; hlen as usize];
    f.read_exact_at(&mut head, 16).map_err(|_| ObjectError::Decode)?;
    Ok((head, 16 + hlen, size))
}

/// The same table from a result's bytes (checked against its checksum here).
pub fn result_files(bytes: &[u8]) -> Result<Vec<FileAt>, ObjectError> {
    let view = CompileResult::decode(bytes)?;
    let base = bytes.as_ptr() as usize;
    Ok(view
        .files
        .into_iter()
        .map(|f| FileAt {
            offset: (f.bytes.as_ptr() as usize - base) as u64,
            len: f.bytes.len() as u64,
            name: f.name,
            mode: f.mode,
            hash: f.hash,
        })
        .collect())
}

/// What the first bytes of an object say, before any checksum is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// Not a result object (a manifest, or any other file).
    NotResult,
    /// A result whose header needs this many bytes from the start.
    NeedBytes(usize),
    /// A result's metadata.
    Meta(EntryMeta),
}

/// Reads a result's metadata from the start of its bytes, for display (`ls`, xattrs, stats).
/// The checksum is not checked here; the mount checks it whenever the object is opened.
pub fn peek_meta(prefix: &[u8]) -> Peek {
    if prefix.len() < 16 || &prefix[..8] != RESULT_MAGIC {
        return Peek::NotResult;
    }
    let hlen = u64::from_le_bytes(prefix[8..16].try_into().expect("8 bytes")) as usize;
    if hlen > 16 << 20 {
        return Peek::NotResult;
    }
    match prefix.get(16..16 + hlen) {
        None => Peek::NeedBytes(16 + hlen),
        Some(h) => match bincode::deserialize::<Header>(h) {
            Ok(h) => Peek::Meta(h.meta),
            Err(_) => Peek::NotResult,
        },
    }
}

impl Manifest {
    /// The object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(MANIFEST_MAGIC, self)
    }
    /// Checks and decodes an object.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ObjectError> {
        decode(MANIFEST_MAGIC, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_set_keeps_its_ages_and_the_first_version_still_reads() {
        let k = |n: u8| crate::key::Key([n; 32]);
        let set = BuildSet { keys: vec![k(1), k(2)], ages: vec![0, 5] };
        let bytes = set.encode();
        assert_eq!(BuildSet::decode(&bytes).unwrap(), set);
        assert_eq!(prefetch_hints(&bytes), vec![k(1), k(2)]);
        #[derive(Serialize)]
        struct V1 {
            keys: Vec<crate::key::Key>,
        }
        let old = encode(BUILD_SET_MAGIC_V1, &V1 { keys: vec![k(3)] });
        assert_eq!(BuildSet::decode(&old).unwrap(), BuildSet { keys: vec![k(3)], ages: vec![0] });
        assert_eq!(prefetch_hints(&old), vec![k(3)]);
        let uneven = encode(BUILD_SET_MAGIC, &BuildSet { keys: vec![k(1)], ages: vec![] });
        assert!(BuildSet::decode(&uneven).is_err());
    }

    fn sample() -> CompileResult {
        CompileResult {
            meta: EntryMeta {
                crate_name: "serde".into(),
                crate_types: vec!["lib".into()],
                target: "x86_64-unknown-linux-gnu".into(),
                rustc_version: "rustc 1.95.0".into(),
                compile_ns: 1_000_000,
                created_unix: 1,
                out_dir: "/t/deps".into(),
                exit_code: 0,
                roots: Vec::new(),
            },
            files: vec![OutputFile {
                name: "libserde-1.rlib".into(),
                mode: 0o644,
                hash: [0; 32],
                body: Body::Bytes(vec![1, 2, 3]),
            }],
            stdout: vec![],
            stderr: b"{\"artifact\":\"/t/deps/libserde-1.rlib\"}\n".to_vec(),
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        let bytes = r.encode().unwrap();
        let v = CompileResult::decode(&bytes).unwrap();
        assert_eq!(v.meta, r.meta);
        assert_eq!(v.files.len(), 1);
        assert_eq!(
            (v.files[0].name.as_str(), v.files[0].mode, v.files[0].bytes),
            ("libserde-1.rlib", 0o644, &[1u8, 2, 3][..])
        );
        assert_eq!((v.stdout, v.stderr), (&r.stdout[..], &r.stderr[..]));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let bytes = sample().encode().unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(CompileResult::decode(&b).is_err(), "flip at {i}");
        }
        for len in 0..bytes.len() {
            assert!(CompileResult::decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn metadata_can_be_read_from_the_first_bytes() {
        let bytes = sample().encode().unwrap();
        assert_eq!(peek_meta(&bytes), Peek::Meta(sample().meta));
        match peek_meta(&bytes[..20]) {
            Peek::NeedBytes(n) => assert_eq!(peek_meta(&bytes[..n]), Peek::Meta(sample().meta)),
            other => panic!("{other:?}"),
        }
        assert_eq!(peek_meta(b"just some file contents"), Peek::NotResult);
    }

    #[test]
    fn a_manifest_is_not_a_result() {
        let m = Manifest { variants: vec![Variant { files: vec!["a.rs".into()], env: vec![] }], recent: vec![] };
        assert_eq!(CompileResult::decode(&m.encode()).unwrap_err(), ObjectError::BadMagic);
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn a_manifest_hints_at_its_newest_results_and_nothing_else_does() {
        use crate::key::Key;
        let mut m = Manifest::default();
        for n in 1..=3u8 {
            m.push_result(Key([n; 32]));
        }
        m.push_result(Key([2; 32]));
        assert_eq!(m.recent, vec![Key([2; 32]), Key([3; 32])], "newest first, no duplicates, capped");
        assert_eq!(prefetch_hints(&m.encode()), m.recent);
        assert!(prefetch_hints(&sample().encode().unwrap()).is_empty(), "a result hints at nothing");
        let mut damaged = m.encode();
        let last = damaged.len() - 40;
        damaged[last] ^= 1;
        assert!(prefetch_hints(&damaged).is_empty(), "a damaged manifest hints at nothing");
        assert!(prefetch_hints(b"hello").is_empty());
    }

    #[test]
    fn a_results_file_table_is_read_from_its_file_as_from_its_bytes() {
        let bytes = sample().encode().unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o");
        std::fs::write(&p, &bytes).unwrap();
        let table = read_result_files(&std::fs::File::open(&p).unwrap()).unwrap();
        assert_eq!(table, result_files(&bytes).unwrap());
        assert!(!table.is_empty());
        for (at, f) in table.iter().zip(&sample().files) {
            assert_eq!((&at.name, at.hash), (&f.name, f.hash));
            assert_eq!(&bytes[at.offset as usize..(at.offset + at.len) as usize], f.body.in_memory().unwrap());
        }
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_result_files(&std::fs::File::open(&p).unwrap()).is_err(), "a truncated object");
        let m = Manifest::default().encode();
        std::fs::write(&p, &m).unwrap();
        assert_eq!(read_result_files(&std::fs::File::open(&p).unwrap()), Err(ObjectError::BadMagic));
    }

    #[test]
    fn a_seed_set_hints_at_its_units_and_the_results_they_name() {
        use crate::key::Key;
        use crate::protocol::seed::{SeedSet, SetEntry};
        let e = |k: u8, refs: Vec<Key>| SetEntry {
            profile: "debug".into(),
            unit: format!("u-{k:016x}"),
            package: "u 1".into(),
            key: Key([k; 32]),
            bound: vec![],
            bytes: 0,
            compile_ns: 0,
            deps: vec![],
            refs,
            native: vec![],
            sources: vec![],
            externs: vec![],
            made: vec![],
            stamp: None,
            fingerprint: None,
        };
        let mut set = SeedSet { entries: vec![e(1, vec![Key([10; 32])]), e(2, vec![])] };
        assert_eq!(prefetch_hints(&set.encode()), vec![Key([10; 32]), Key([1; 32]), Key([2; 32])]);
        set.entries[1].bytes = 1 << 20;
        assert_eq!(prefetch_hints(&set.encode()), vec![Key([2; 32]), Key([10; 32]), Key([1; 32])], "the biggest first");
    }
}
