//! A dependency set's inputs as they are now, and the one rule for "changed while the tool
//! ran".
//!
//! The rule ([`changed_since`]): a file whose mtime is at or after the run's start, and not in
//! the future, may have been written while the tool read it, so its pair with the tool's output
//! is never recorded (ccache does the same). At-or-after, not after: with coarse timestamps an
//! edit in the same tick as the start is indistinguishable from one just after it, and every
//! doubt is a miss. A future mtime is a skewed clock or a tarball's stamp, not an edit. A file
//! the tool read that is gone after the run counts as changed too.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::basedir::{self, Rel};
use super::filehash;
use crate::protocol::object::Variant;

/// Labelled files with their contents' hashes (`None`: absent).
pub type HashedFiles = Vec<(String, Option<[u8; 32]>)>;

/// Files with their contents' hashes and variables with their values (`None`: unset).
pub type VariantInputs = (HashedFiles, Vec<(String, Option<String>)>);

/// Why a dependency set cannot be hashed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotNow {
    /// This file changed since the run began.
    Changed(String),
    /// This file, which the tool read, cannot be read now.
    Gone(String),
}

/// Whether a file with these metadata was written at or after `t` (and not in the future).
pub fn changed_since(meta: &fs::Metadata, t: SystemTime) -> bool {
    match meta.modified() {
        Ok(m) => m >= t && m <= SystemTime::now(),
        Err(_) => true,
    }
}

/// The inputs of a dependency set whose files the tool read (rustc's dep-info, a C compiler's
/// dependency file): each must be there. Paths are stored relative to the roots.
pub fn hash_read_files(v: &Variant, rel: &Rel, since: Option<SystemTime>) -> Result<VariantInputs, NotNow> {
    let mut files = Vec::with_capacity(v.files.len());
    for f in &v.files {
        let path = rel.abs(f);
        if let Some(t) = since {
            match fs::metadata(&path) {
                Ok(m) if changed_since(&m, t) => return Err(NotNow::Changed(path)),
                Ok(_) => {}
                Err(_) => return Err(NotNow::Gone(path)),
            }
        }
        let h = filehash::hash_file(Path::new(&path)).map_err(|_| NotNow::Gone(path))?;
        files.push((f.clone(), Some(h)));
    }
    Ok((files, variant_env(&v.env, rel)))
}

/// The variables of a dependency set with their values now, root-relative. A name that is a
/// root's placeholder marks an output bound to that root (`engine::bind_roots`): its value is
/// the root's path here.
pub fn variant_env(names: &[String], rel: &Rel) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|k| match basedir::is_placeholder(k) {
            true => (k.clone(), Some(rel.abs(k))),
            false => (k.clone(), std::env::var(k).ok().map(|v| rel.rel(&v))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_file_written_at_or_after_the_start_changed_and_a_future_stamp_did_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "x").unwrap();
        let m = fs::metadata(&p).unwrap();
        let written = m.modified().unwrap();
        assert!(changed_since(&m, written), "same instant as the start: changed");
        assert!(!changed_since(&m, written + Duration::from_secs(1)), "before the start");
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(3600)).unwrap();
        assert!(!changed_since(&fs::metadata(&p).unwrap(), written), "a future stamp is not an edit");
    }

    #[test]
    fn a_read_file_that_is_gone_or_changed_is_not_hashed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lib.rs");
        let before = SystemTime::now() - Duration::from_secs(5);
        fs::write(&p, "fn a() {}").unwrap();
        let v = Variant { files: vec![p.display().to_string()], env: vec![] };
        let rel = Rel::default();
        assert!(hash_read_files(&v, &rel, None).is_ok());
        assert!(matches!(hash_read_files(&v, &rel, Some(before)), Err(NotNow::Changed(_))));
        fs::remove_file(&p).unwrap();
        assert!(matches!(hash_read_files(&v, &rel, None), Err(NotNow::Gone(_))));
        assert!(matches!(hash_read_files(&v, &rel, Some(before)), Err(NotNow::Gone(_))));
    }
}
