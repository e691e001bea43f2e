//! What a dynamically linked program needs to start, read from its ELF headers: the program
//! interpreter (`PT_INTERP`, the dynamic loader), the libraries it names (`DT_NEEDED`) and
//! where it says to look for them (`DT_RUNPATH`, `DT_RPATH`). Never `ldd`'s output: ldd runs
//! the loader and prints what it resolved on this machine, in a format that changed under
//! sccache-dist (issue #22); the headers are the program's own words.
//!
//! 64-bit little-endian ELF only (x86_64, aarch64): what rustup ships for Linux hosts. Any
//! other file is an error, so a toolchain cairn cannot read is not sent.

use std::fmt;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// The headers' answer for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `PT_INTERP`: set for programs, not for libraries.
    pub interp: Option<String>,
    pub needed: Vec<String>,
    /// `DT_RUNPATH` entries (`:`-split), `$ORIGIN` unexpanded.
    pub runpath: Vec<String>,
    /// `DT_RPATH` entries (only heeded where there is no RUNPATH).
    pub rpath: Vec<String>,
    /// The machine (`e_machine`): 62 x86_64, 183 aarch64.
    pub machine: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ElfError {}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&self, off: u64, len: u64) -> Result<&[u8], ElfError> {
        let end = off.checked_add(len).ok_or_else(|| ElfError("an offset past the end".into()))?;
        self.0
            .get(off as usize..end as usize)
            .ok_or_else(|| ElfError("a header points past the end of the file".into()))
    }
    fn u16(&self, off: u64) -> Result<u16, ElfError> {
        Ok(u16::from_le_bytes(self.bytes(off, 2)?.try_into().expect("2 bytes")))
    }
    fn u32(&self, off: u64) -> Result<u32, ElfError> {
        Ok(u32::from_le_bytes(self.bytes(off, 4)?.try_into().expect("4 bytes")))
    }
    fn u64(&self, off: u64) -> Result<u64, ElfError> {
        Ok(u64::from_le_bytes(self.bytes(off, 8)?.try_into().expect("8 bytes")))
    }
    fn cstr(&self, off: u64, limit: u64) -> Result<String, ElfError> {
        let tail =
            self.bytes(off, limit.saturating_sub(off).min(self.0.len() as u64 - off.min(self.0.len() as u64)))?;
        let end = tail.iter().position(|&b| b == 0).ok_or_else(|| ElfError("an unterminated string".into()))?;
        String::from_utf8(tail[..end].to_vec()).map_err(|_| ElfError("a name that is not UTF-8".into()))
    }
}

/// Reads the dynamic-linking facts of an ELF file's bytes.
pub fn read(data: &[u8]) -> Result<Dynamic, ElfError> {
    let r = Reader(data);
    if r.bytes(0, 4)? != b"\x7fELF" {
        return Err(ElfError("not an ELF file".into()));
    }
    if r.bytes(4, 2)? != [2, 1] {
        return Err(ElfError("not a 64-bit little-endian ELF file".into()));
    }
    let machine = r.u16(18)?;
    let phoff = r.u64(32)?;
    let phentsize = u64::from(r.u16(54)?);
    let phnum = u64::from(r.u16(56)?);
    if phentsize < 56 {
        return Err(ElfError("program headers too small".into()));
    }
    let mut loads: Vec<(u64, u64, u64)> = Vec::new(); // vaddr, offset, filesz
    let mut dynamic = None;
    let mut out = Dynamic { machine, ..Default::default() };
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        let kind = r.u32(h)?;
        let offset = r.u64(h + 8)?;
        let vaddr = r.u64(h + 16)?;
        let filesz = r.u64(h + 32)?;
        match kind {
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_INTERP => out.interp = Some(r.cstr(offset, offset + filesz)?),
            _ => {}
        }
    }
    let Some((doff, dsize)) = dynamic else {
        return Ok(out); // statically linked: needs nothing
    };
    let mut entries = Vec::new();
    let (mut strtab, mut strsz) = (None, 0u64);
    for i in 0..dsize / 16 {
        let tag = r.u64(doff + i * 16)?;
        let val = r.u64(doff + i * 16 + 8)?;
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = val,
            _ => entries.push((tag, val)),
        }
    }
    let addr = strtab.ok_or_else(|| ElfError("a dynamic section without a string table".into()))?;
    // DT_STRTAB is an address; the segment that maps it says where it is in the file.
    let (vaddr, offset, _) = loads
        .iter()
        .copied()
        .find(|(v, _, sz)| addr >= *v && addr < v + sz)
        .ok_or_else(|| ElfError("the string table is in no loaded segment".into()))?;
    let base = addr - vaddr + offset;
    let limit = if strsz > 0 { base + strsz } else { data.len() as u64 };
    for (tag, val) in entries {
        let s = || r.cstr(base + val, limit);
        match tag {
            DT_NEEDED => out.needed.push(s()?),
            DT_RUNPATH => out.runpath.extend(s()?.split(':').filter(|p| !p.is_empty()).map(String::from)),
            DT_RPATH => out.rpath.extend(s()?.split(':').filter(|p| !p.is_empty()).map(String::from)),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_program_names_its_loader_and_libc() {
        let d = read(&std::fs::read("/bin/sh").unwrap()).unwrap();
        let interp = d.interp.expect("a dynamically linked /bin/sh");
        assert!(interp.contains("ld-linux"), "{interp}");
        assert!(d.needed.iter().any(|n| n.starts_with("libc.so")), "{:?}", d.needed);
    }

    #[test]
    fn rustc_names_its_driver_and_its_runpath() {
        let out = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
        let sysroot = String::from_utf8(out.stdout).unwrap();
        let d = read(&std::fs::read(format!("{}/bin/rustc", sysroot.trim())).unwrap()).unwrap();
        assert!(d.needed.iter().any(|n| n.starts_with("librustc_driver")), "{:?}", d.needed);
        assert!(d.runpath.iter().chain(&d.rpath).any(|p| p.contains("$ORIGIN")), "{d:?}");
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let sh = std::fs::read("/bin/sh").unwrap();
        assert!(read(b"#!/bin/sh\n").is_err());
        assert!(read(&sh[..64]).is_err());
        for cut in [16usize, 40, 100, 1000] {
            let _ = read(&sh[..cut.min(sh.len())]);
        }
        let mut bad = sh.clone();
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff far away
        assert!(read(&bad).is_err());
    }
}
