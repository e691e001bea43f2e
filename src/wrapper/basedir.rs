//! `CAIRN_BASEDIR`: sharing entries between checkouts of one project at different paths.
//!
//! `CAIRN_BASEDIR` is a `:`-separated list of folders. For a compile whose working directory
//! — or, failing that, its `--out-dir` (registry crates compile in the registry, but into the
//! checkout's target dir) — is inside one of them (the longest that matches), the **checkout
//! root** is that folder if the path is the folder itself, or else its child that contains the
//! path. So it may name the checkout itself, or a folder whose children are checkouts (CI work
//! folders, worktrees). Every path inside the checkout root then enters the keys with the root replaced
//! by a placeholder, and restored dep-info and messages get the current root back.
//!
//! Off by default: an artifact compiled in one checkout can still carry that checkout's
//! absolute paths (debuginfo `DW_AT_comp_dir`, paths of `OUT_DIR` files `include!`d), which
//! `--remap-path-prefix` removes; see docs/cache-key.md.

use std::path::Path;

/// Stands for the checkout root in keys and stored dependency sets. Not a valid path start.
pub const PLACEHOLDER: &str = "\u{1}CAIRN_ROOT";

/// The checkout root of this compile, if `CAIRN_BASEDIR` applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rel {
    root: Option<String>,
}

impl Rel {
    /// From the environment, the working directory and the output folder.
    pub fn from_env(cwd: &Path, out_dir: &Path) -> Rel {
        let dirs = std::env::var("CAIRN_BASEDIR").ok();
        let r = Rel::new(dirs.as_deref(), cwd);
        if r.root.is_some() {
            return r;
        }
        Rel::new(dirs.as_deref(), out_dir)
    }

    /// From a `CAIRN_BASEDIR` value and a path inside the checkout.
    pub fn new(basedirs: Option<&str>, cwd: &Path) -> Rel {
        let Some(list) = basedirs else { return Rel::default() };
        let best = list
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d.trim_end_matches('/')))
            .filter(|d| d.is_absolute() && cwd.starts_with(d))
            .max_by_key(|d| d.as_os_str().len());
        let root = best.map(|d| match cwd.strip_prefix(d).ok().and_then(|r| r.components().next()) {
            Some(first) => d.join(first).display().to_string(),
            None => d.display().to_string(),
        });
        Rel { root }
    }

    /// The checkout root, if any.
    pub fn root(&self) -> Option<&str> {
        self.root.as_deref()
    }

    /// `s` with the checkout root (as a whole path component) replaced by the placeholder.
    pub fn rel(&self, s: &str) -> String {
        match &self.root {
            Some(root) => replace_path(s, root, PLACEHOLDER),
            None => s.to_string(),
        }
    }

    /// A stored relative path made absolute for this checkout.
    pub fn abs(&self, s: &str) -> String {
        match &self.root {
            Some(root) => s.replace(PLACEHOLDER, root),
            None => s.to_string(),
        }
    }
}

/// Replaces `from` where it stands as a whole path prefix: followed by `/`, the end, or a
/// character that cannot continue a path component in rustc's output (quote, space, colon,
/// comma, `=`, newline).
pub fn replace_path(s: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let boundary = after.is_empty() || after.starts_with(['/', '"', ' ', ':', ',', '=', '\n', '\\']);
        out.push_str(&rest[..i]);
        out.push_str(if boundary { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_basedir_or_its_child_holding_the_cwd() {
        assert_eq!(Rel::new(Some("/ci"), Path::new("/ci/job7/proj")).root(), Some("/ci/job7"));
        assert_eq!(Rel::new(Some("/ci/job7"), Path::new("/ci/job7")).root(), Some("/ci/job7"));
        assert_eq!(
            Rel::new(Some("/home/u:/home/u/wt"), Path::new("/home/u/wt/feat/x")).root(),
            Some("/home/u/wt/feat")
        );
        assert_eq!(Rel::new(Some("/ci"), Path::new("/root/.cargo/registry/src/x")).root(), None);
        assert_eq!(Rel::new(None, Path::new("/ci/a")).root(), None);
        std::env::set_var("CAIRN_BASEDIR", "/ci");
        let r = Rel::from_env(Path::new("/reg/serde"), Path::new("/ci/job7/target/debug/deps"));
        std::env::remove_var("CAIRN_BASEDIR");
        assert_eq!(r.root(), Some("/ci/job7"), "a registry crate built into the checkout");
    }

    #[test]
    fn only_whole_components_are_replaced() {
        let r = Rel::new(Some("/w"), Path::new("/w/a"));
        assert_eq!(r.rel("/w/a/src/lib.rs"), format!("{PLACEHOLDER}/src/lib.rs"));
        assert_eq!(r.rel("/w/ab/src/lib.rs"), "/w/ab/src/lib.rs");
        assert_eq!(r.rel("OUT_DIR=/w/a"), format!("OUT_DIR={PLACEHOLDER}"));
        assert_eq!(r.abs(&r.rel("/w/a/x")), "/w/a/x");
        let other = Rel::new(Some("/w"), Path::new("/w/b"));
        assert_eq!(other.abs(&r.rel("/w/a/x")), "/w/b/x");
    }
}
