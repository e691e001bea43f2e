//! Why a crate recompiled: the inputs of each miss, kept so `cairn why <crate>` can name the one
//! that differs from the nearest earlier build.
//!
//! Every miss (a compile cairn-rustc ran and stored, or a failure) appends its **fingerprint**
//! — each key input as a labelled short value: the toolchain, each argument, each `--extern`
//! by content, each crate variable, each source file and variable from dep-info, each linked
//! file — to `<cache>/why/<crate>.bin`, keeping the last [`KEEP`]. A miss is exactly when a new
//! entry is made, so these are the variants this machine stored. `cairn why` takes the newest
//! one and compares it with the earlier one of the same crate types that differs least.
//! Hits write nothing: the hit path stays as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache_key::BaseInputs;

/// How many fingerprints are kept per crate.
pub const KEEP: usize = 8;

/// One compile's key inputs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fingerprint {
    pub unix: u64,
    pub crate_types: Vec<String>,
    /// `hit`, `miss`, `miss:failed`.
    pub outcome: String,
    /// Label (`source src/lib.rs`, `arg -C=opt-level=3`, `extern serde`) → short value.
    pub fields: BTreeMap<String, String>,
}

fn short(h: &Option<[u8; 32]>) -> String {
    match h {
        Some(h) => h[..6].iter().map(|b| format!("{b:02x}")).collect(),
        None => "absent".into(),
    }
}

/// The fields of a compile from its base inputs and its dependency set (files with content
/// hashes, variables with values).
pub fn fields(
    base: &BaseInputs,
    toolchain_version: &str,
    files: &[(String, Option<[u8; 32]>)],
    env: &[(String, Option<String>)],
) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("toolchain".into(), format!("{toolchain_version} ({})", short(&Some(base.toolchain))));
    f.insert("working directory".into(), base.cwd.clone());
    f.insert("input".into(), base.input.clone());
    for a in base.args.iter().chain(&base.cfgs) {
        f.insert(format!("arg {a}"), "given".into());
    }
    for (name, h) in &base.externs {
        f.insert(format!("extern {name}"), short(h));
    }
    for (name, h) in &base.static_libs {
        f.insert(format!("static lib {name}"), short(h));
    }
    if base.target_spec.is_some() {
        f.insert("target spec".into(), short(&base.target_spec));
    }
    for (k, v) in &base.env {
        f.insert(format!("variable {k}"), v.clone());
    }
    for (label, h) in &base.link {
        f.insert(format!("link {label}"), short(h));
    }
    for (path, h) in files {
        f.insert(format!("source {path}"), short(h));
    }
    for (k, v) in env {
        f.insert(format!("read variable {k}"), v.clone().unwrap_or_else(|| "unset".into()));
    }
    f.into_iter().map(|(k, v)| (crate::engine::basedir::readable(&k), crate::engine::basedir::readable(&v))).collect()
}

/// The file that keeps a crate's fingerprints (crate names are `[A-Za-z0-9_]`; anything else
/// is replaced, so a name can never leave the folder).
pub fn path(base_dir: &Path, krate: &str) -> PathBuf {
    let safe: String = krate.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    base_dir.join("why").join(format!("{safe}.bin"))
}

/// A crate's fingerprints, oldest first (none when absent or unreadable).
pub fn load(base_dir: &Path, krate: &str) -> Vec<Fingerprint> {
    fs::read(path(base_dir, krate)).ok().and_then(|b| bincode::deserialize(&b).ok()).unwrap_or_default()
}

/// Appends a fingerprint, keeping the newest [`KEEP`]. Temp file then rename; two compiles of
/// one crate name at once may lose one record, never corrupt the file.
pub fn append(base_dir: &Path, krate: &str, fp: Fingerprint) -> io::Result<()> {
    let mut all = load(base_dir, krate);
    all.push(fp);
    let excess = all.len().saturating_sub(KEEP);
    all.drain(..excess);
    let p = path(base_dir, krate);
    fs::create_dir_all(p.parent().unwrap_or(base_dir))?;
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bincode::serialize(&all).map_err(io::Error::other)?)?;
    fs::rename(&tmp, &p)
}

/// One difference between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Changed { label: String, from: String, to: String },
    Added { label: String, value: String },
    Removed { label: String, value: String },
}

/// What differs from `old` to `new`.
pub fn diff(old: &Fingerprint, new: &Fingerprint) -> Vec<Change> {
    let mut out = Vec::new();
    for (label, value) in &new.fields {
        match old.fields.get(label) {
            Some(o) if o == value => {}
            Some(o) => out.push(Change::Changed { label: label.clone(), from: o.clone(), to: value.clone() }),
            None => out.push(Change::Added { label: label.clone(), value: value.clone() }),
        }
    }
    for (label, value) in &old.fields {
        if !new.fields.contains_key(label) {
            out.push(Change::Removed { label: label.clone(), value: value.clone() });
        }
    }
    out
}

/// An earlier fingerprint and how the newest one differs from it.
pub type Nearest<'a> = (&'a Fingerprint, Vec<Change>);

/// The newest fingerprint and, of the earlier ones with the same crate types, the one that
/// differs least from it, with the differences.
pub fn explain(all: &[Fingerprint]) -> Option<(&Fingerprint, Option<Nearest<'_>>)> {
    let (newest, earlier) = all.split_last()?;
    let nearest = earlier
        .iter()
        .filter(|f| f.crate_types == newest.crate_types)
        .map(|f| (f, diff(f, newest)))
        .min_by_key(|(f, d)| (d.len(), std::cmp::Reverse(f.unix)));
    Some((newest, nearest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(unix: u64, fields: &[(&str, &str)]) -> Fingerprint {
        Fingerprint {
            unix,
            crate_types: vec!["lib".into()],
            outcome: "miss".into(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn the_nearest_earlier_build_names_what_changed() {
        let a = fp(1, &[("source src/lib.rs", "aaaa"), ("arg -C=opt-level=0", "given")]);
        let b = fp(2, &[("source src/lib.rs", "bbbb"), ("arg -C=opt-level=3", "given")]);
        let c = fp(3, &[("source src/lib.rs", "cccc"), ("arg -C=opt-level=0", "given")]);
        let all = [a, b, c];
        let (newest, nearest) = explain(&all).unwrap();
        assert_eq!(newest.unix, 3);
        let (near, changes) = nearest.unwrap();
        assert_eq!(near.unix, 1, "one difference beats three");
        assert_eq!(
            changes,
            [Change::Changed { label: "source src/lib.rs".into(), from: "aaaa".into(), to: "cccc".into() }]
        );
    }

    #[test]
    fn fingerprints_are_kept_per_crate_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..(KEEP as u64 + 3) {
            append(dir.path(), "serde", fp(i, &[])).unwrap();
        }
        let all = load(dir.path(), "serde");
        assert_eq!(all.len(), KEEP);
        assert_eq!(all.last().unwrap().unix, KEEP as u64 + 2);
        assert!(load(dir.path(), "other").is_empty());
        assert!(path(dir.path(), "../x").starts_with(dir.path().join("why")));
    }
}
