//! The objects and requests of target-dir seeding (issue #21; docs/seeding.md): what a cargo
//! unit looks like in the cache, how a build's units are listed, and what the wrapper tells the
//! daemon about the target dir it builds in.
//!
//! - A **unit** object holds one cargo unit of one target dir, as cargo left it: its
//!   fingerprint folder (`.fingerprint/<pkg>-<hash>/`), its files in `deps/` and its folder in
//!   `build/`, each with its mode (restores give times by the dependency graph). Text files that name the build's
//!   folders (dep-info, a build script's `output`) are kept with placeholders for the roots;
//!   the launcher cairn puts in place of a build script is kept as a mark and written anew.
//!   A file that is an output of the unit's own compile (or script run), byte for byte, is not
//!   copied: it names that result object and the file in it (`Stored::Result`), so a unit
//!   costs the cache only its fingerprints and text, and removing a result
//!   (`rm <mount>/<key>`) takes every unit built from it out of later seeds.
//!   Layout: `MAGIC ++ u64 header length ++ bincode(header) ++ payloads… ++ blake3(all
//!   before)`, so a restore slices the payloads out of the bytes read, with no copy.
//! - A **set** lists the units a target dir's builds left, for one seed context (toolchain,
//!   flags, cargo, C compiler …) and one lockfile; restoring it into a fresh target dir is
//!   what seeding is.
//! - The **marker** (`<target>/.cairn-seed`) is written when cargo probes a target dir; it
//!   names the set keys and the roots, and every compile in that target dir reports to them.

use serde::{Deserialize, Serialize};

use super::object::{decode, encode, ObjectError};
use crate::key::Key;

const UNIT_MAGIC: &[u8; 8] = b"CAIRNU02";
const SET_MAGIC: &[u8; 8] = b"CAIRNS05";
const MARKER_MAGIC: &[u8; 8] = b"CAIRNK01";

/// The marker's file name, in the target dir.
pub const MARKER: &str = ".cairn-seed";

/// How one file of a unit is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stored {
    /// The bytes as they were.
    Bytes,
    /// UTF-8 text whose roots are placeholders (engine/basedir.rs).
    Relocated,
    /// cairn's launcher of a build script: written anew for this machine's `cairn-rustc`.
    Launcher,
    /// The bytes of an output file of a stored result; no payload here.
    Result(Reference),
}

/// An output file of a result object: the object, the file's name in it, and its BLAKE3 and
/// length, which the restore checks against the result's own file table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub key: Key,
    pub name: String,
    pub hash: [u8; 32],
    pub len: u64,
}

/// One file of a unit: its path relative to the profile folder (`deps/libfoo-1a2b.rlib`,
/// `.fingerprint/foo-1a2b/lib-foo`), mode and how it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFile {
    pub path: String,
    pub mode: u32,
    pub stored: Stored,
    /// Length of its payload.
    pub len: u64,
}

/// A unit object decoded: file headers and their payloads, slices of the object's bytes.
pub struct UnitView<'a> {
    pub files: Vec<(UnitFile, &'a [u8])>,
}

/// Encodes a unit: each file's header and payload.
pub fn encode_unit(files: &[(UnitFile, Vec<u8>)]) -> Vec<u8> {
    let header: Vec<UnitFile> = files.iter().map(|(f, b)| UnitFile { len: b.len() as u64, ..f.clone() }).collect();
    let head = bincode::serialize(&header).expect("serializing to memory cannot fail");
    let mut out = UNIT_MAGIC.to_vec();
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for (_, b) in files {
        out.extend_from_slice(b);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Checks a unit object's checksum and slices it.
pub fn decode_unit(bytes: &[u8]) -> Result<UnitView<'_>, ObjectError> {
    if bytes.len() < 48 || &bytes[..8] != UNIT_MAGIC {
        return Err(ObjectError::BadMagic);
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(ObjectError::Checksum);
    }
    let hlen = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")) as usize;
    let head = body.get(16..16usize.checked_add(hlen).ok_or(ObjectError::Decode)?).ok_or(ObjectError::Decode)?;
    let header: Vec<UnitFile> = bincode::deserialize(head).map_err(|_| ObjectError::Decode)?;
    let mut at = 16 + hlen;
    let mut files = Vec::with_capacity(header.len());
    for f in header {
        let end = at.checked_add(f.len as usize).ok_or(ObjectError::Decode)?;
        let payload = body.get(at..end).ok_or(ObjectError::Decode)?;
        at = end;
        files.push((f, payload));
    }
    if at != body.len() {
        return Err(ObjectError::Decode);
    }
    Ok(UnitView { files })
}

/// Reads a unit object's header from a file the daemon has checked against its checksum (the
/// whole object), without reading the payloads: each file's header and the offset of its
/// payload, so a restore can copy it file to file. The lengths must add up to the file's.
pub fn read_unit_header(f: &std::fs::File) -> Result<Vec<(UnitFile, u64)>, ObjectError> {
    let (head, mut at, size) = super::object::read_framed_header(f, UNIT_MAGIC)?;
    let header: Vec<UnitFile> = bincode::deserialize(&head).map_err(|_| ObjectError::Decode)?;
    let mut out = Vec::with_capacity(header.len());
    for file in header {
        let off = at;
        at = at.checked_add(file.len).ok_or(ObjectError::Decode)?;
        out.push((file, off));
    }
    if at.checked_add(32) != Some(size) {
        return Err(ObjectError::Decode);
    }
    Ok(out)
}

/// One unit in a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetEntry {
    /// The profile folder, relative to the target dir (`debug`, `x86_64-unknown-linux-gnu/release`).
    pub profile: String,
    /// cargo's name for the unit: `<package>-<hash>`.
    pub unit: String,
    /// `<name> <version>` of its package, as in Cargo.lock.
    pub package: String,
    /// The unit object.
    pub key: Key,
    /// Roots whose absolute paths its files hold where they cannot be moved (placeholder,
    /// path): it is only restored under the same.
    pub bound: Vec<(String, String)>,
    /// Its files' total size.
    pub bytes: u64,
    /// How long compiling it (and running its build script) took, where known (ns).
    pub compile_ns: u64,
    /// The units it was built from, by hash: a restore gives each unit a modification time
    /// after those of the units it depends on, as cargo expects.
    pub deps: Vec<String>,
    /// The result objects its unit object names (`Stored::Result`): fetched with it.
    pub refs: Vec<Key>,
    /// Native files outside the target dir its compile read (see [`Capture::native`]), by
    /// path (roots as placeholders) and BLAKE3: it is only restored while each is the same.
    pub native: Vec<(String, [u8; 32])>,
    /// A workspace unit's sources ([`Capture::sources`]); empty for a registry or git unit.
    pub sources: Vec<(String, Option<[u8; 32]>)>,
    /// A workspace unit's `--extern` files ([`Capture::externs`]).
    pub externs: Vec<(String, [u8; 32])>,
    /// The BLAKE3 of each output of the result its files name (empty when there is none):
    /// what a workspace unit built on it must have been built with.
    pub made: Vec<[u8; 32]>,
    /// A workspace build-script run that declared no inputs: cargo's own record of it, its
    /// package's newest file (path, roots as placeholders) and that file's time (ns). Cargo
    /// runs the script again unless that file has that time, so a restore leaves it out then
    /// (a checkout made at another time), and what is built on it.
    pub stamp: Option<(String, u64)>,
    /// Cargo's fingerprint of the unit (the hash in its fingerprint folder) and those of the
    /// units it was built on, as its `.json` lists them: cargo rebuilds a unit whose
    /// dependencies' fingerprints are not these, so a restore takes a workspace unit's
    /// variant only when they are the fingerprints of what it restores.
    pub fingerprint: Option<(u64, Vec<u64>)>,
}

impl SetEntry {
    /// Whether it is a unit of the workspace's own packages (restored only while its sources
    /// hash as they did), not a registry or git package's.
    pub fn is_own(&self) -> bool {
        !self.sources.is_empty()
    }
}

/// The units of a target dir's builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSet {
    pub entries: Vec<SetEntry>,
}

impl SeedSet {
    pub fn encode(&self) -> Vec<u8> {
        encode(SET_MAGIC, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<SeedSet, ObjectError> {
        decode(SET_MAGIC, bytes)
    }
}

/// What the probe found about a target dir: the set keys its builds report to, and the roots
/// of its paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The set of this seed context and this lockfile.
    pub exact: Key,
    /// The set of this seed context and this workspace, whatever its lockfile.
    pub latest: Key,
    /// The roots (placeholder, path): checkout, `CARGO_HOME`, target dir.
    pub roots: Vec<(String, String)>,
}

impl Marker {
    pub fn encode(&self) -> Vec<u8> {
        encode(MARKER_MAGIC, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Marker, ObjectError> {
        decode(MARKER_MAGIC, bytes)
    }
}

/// A unit's report (a registry or git package's, or a workspace package's), sent with its
/// target dir's descriptor once its compile (or script run) succeeded: cargo writes the unit's fingerprint right after, and the daemon
/// copies the unit once that is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub marker: Marker,
    /// The profile folder, relative to the target dir.
    pub profile: String,
    /// The unit: `<package>-<hash>`.
    pub unit: String,
    /// `<name> <version>` of its package.
    pub package: String,
    /// How long its compile (or run) took, ns.
    pub compile_ns: u64,
    /// The units it was built from, by hash (its `--extern` crates, its build script's run,
    /// the runs its own run reads through `DEP_*`).
    pub deps: Vec<String>,
    /// The result object of the compile (or run) reported: files of the unit that are its
    /// outputs are kept as references to it.
    pub result: Option<ResultOf>,
    /// Native files outside the target dir that went into its outputs, which cargo's
    /// fingerprint does not see: the `-l static=` libraries an rlib bundles, and for a unit that
    /// links (a proc-macro, a build script) the libraries `-l` found and the files of
    /// `-C link-arg`. By path (roots as placeholders) and BLAKE3.
    pub native: Vec<(String, [u8; 32])>,
    /// For a unit of the workspace's own packages: every file its compile's dependency set
    /// lists outside the target dir (its sources, what it includes, what its link read), by
    /// path (roots as placeholders) and BLAKE3 (`None`: a file that must stay absent). Cargo
    /// judges these files by their times, which a copy cannot vouch for; the unit is only
    /// restored while each hashes as it did. Empty for a registry or git unit, whose sources
    /// are fixed by its version and checksum.
    pub sources: Vec<(String, Option<[u8; 32]>)>,
    /// For a unit of the workspace's own packages: the unit (by hash) and BLAKE3 of each
    /// `--extern` file its compile read, and of every other file of the target dir its
    /// dependency set lists (what its link read). Cargo judges a dependency of a workspace package by
    /// its time, not its bytes, and two checkouts sharing a lockfile may have built the same
    /// unit of a package from different sources; the unit is only restored on top of the
    /// very bytes it was built with ([`SetEntry::made`]).
    pub externs: Vec<(String, [u8; 32])>,
}

/// The result a unit's compile (or run) was served from or stored as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultOf {
    pub key: Key,
    /// Its output folder, relative to the profile folder (`deps`, `build/<unit>/out`).
    pub dir: String,
    /// The placeholders of the roots its outputs name (they bind the unit to those roots).
    pub bound: Vec<String>,
}

impl Capture {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("serializing to memory cannot fail")
    }
    pub fn decode(bytes: &[u8]) -> Option<Capture> {
        bincode::deserialize(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, stored: Stored) -> UnitFile {
        UnitFile { path: path.into(), mode: 0o644, stored, len: 0 }
    }

    #[test]
    fn a_unit_round_trips_and_any_flipped_bit_is_refused() {
        let files = vec![
            (file("deps/libfoo-1.rlib", Stored::Bytes), vec![1u8, 2, 3]),
            (file("deps/foo-1.d", Stored::Relocated), b"<target>/debug/deps/foo-1.d: src/lib.rs".to_vec()),
            (file(".fingerprint/foo-1/lib-foo", Stored::Bytes), Vec::new()),
        ];
        let bytes = encode_unit(&files);
        let v = decode_unit(&bytes).unwrap();
        assert_eq!(v.files.len(), 3);
        assert_eq!(v.files[0].1, &[1, 2, 3]);
        assert_eq!(v.files[1].0.stored, Stored::Relocated);
        assert_eq!(v.files[2].1, b"");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode_unit(&bad).is_err(), "a flip at byte {i} was accepted");
        }
        assert!(decode_unit(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_units_header_is_read_from_its_file_and_lengths_must_add_up() {
        let files = vec![
            (file("deps/libfoo-1.rlib", Stored::Bytes), vec![7u8; 1000]),
            (file("deps/foo-1.d", Stored::Relocated), b"text".to_vec()),
        ];
        let bytes = encode_unit(&files);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o");
        std::fs::write(&p, &bytes).unwrap();
        let h = read_unit_header(&std::fs::File::open(&p).unwrap()).unwrap();
        assert_eq!(h.len(), 2);
        let (f, off) = &h[1];
        assert_eq!(&bytes[*off as usize..(*off + f.len) as usize], b"text");
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_unit_header(&std::fs::File::open(&p).unwrap()).is_err(), "a truncated object");
        std::fs::write(&p, b"CAIRNR04 not a unit").unwrap();
        assert!(read_unit_header(&std::fs::File::open(&p).unwrap()).is_err());
    }

    #[test]
    fn sets_and_markers_round_trip() {
        let e = SetEntry {
            profile: "debug".into(),
            unit: "foo-1a".into(),
            package: "foo 1.0.0".into(),
            key: Key([3; 32]),
            bound: vec![],
            bytes: 9,
            compile_ns: 11,
            deps: vec!["00ff".into()],
            refs: vec![Key([4; 32])],
            native: vec![("/usr/lib/libz.a".into(), [5; 32])],
            sources: vec![("<checkout>/src/lib.rs".into(), Some([6; 32])), ("<checkout>/src/gone.rs".into(), None)],
            externs: vec![("00ff".into(), [7; 32])],
            made: vec![[8; 32]],
            stamp: None,
            fingerprint: None,
        };
        let s = SeedSet { entries: vec![e] };
        assert_eq!(SeedSet::decode(&s.encode()).unwrap(), s);
        let m = Marker { exact: Key([1; 32]), latest: Key([2; 32]), roots: vec![("<t>".into(), "/t".into())] };
        assert_eq!(Marker::decode(&m.encode()).unwrap(), m);
        assert!(SeedSet::decode(&m.encode()).is_err());
    }
}
