//! Roots: the folders whose absolute paths differ from one machine, checkout or target dir to
//! the next, while what a compile reads inside them does not. Their paths enter keys as
//! placeholders, so a teammate's checkout, another `CARGO_HOME` and another target dir compute
//! the same keys; restored dep-info and messages get this build's paths back.
//!
//! For a rustc compile ([`Rel::for_rustc`]) three roots are found with no setting:
//! - the **checkout**: the working directory when the input path is relative (cargo runs rustc
//!   from the workspace root, with a relative path, for every package inside the workspace);
//! - **`CARGO_HOME`**: the prefix before `/registry/src/` or `/git/checkouts/` of the input, or
//!   else `$CARGO_HOME`, or `$HOME/.cargo`;
//! - the **target dir**: `--out-dir` up to its profile folder (`<T>/debug/deps`,
//!   `<T>/<triple>/release/build/<pkg>-<hash>` …).
//!
//! `CAIRN_BASEDIR` (a `:`-separated list of folders) names the checkout where cairn cannot
//! infer it: for a compile whose working directory — or, failing that, its `--out-dir` — is
//! inside one of them (the longest that matches), the checkout root is that folder if the path
//! is the folder itself, or else its child that contains the path (CI work folders, worktrees).
//! Build-script runs and C compiles use `CAIRN_BASEDIR` only ([`Rel::from_env`]).
//!
//! A shared key must not hand out an artifact that names another machine's folders, so rustc is
//! told to write each root as a fixed prefix (`--remap-path-prefix`, after cargo's
//! `trim-paths`: checkout `.`, `CARGO_HOME` `/cargo`, target dir `/cargo/build-dir`), and an
//! output that still holds a root's absolute path (a string a proc-macro or `env!` put there, C
//! debuginfo) is stored bound to that root's value ([`Rel::found_in`]); see docs/cache-key.md.

use std::path::{Component, Path};

/// Stands for the checkout root in keys and stored dependency sets. Not a valid path start.
pub const PLACEHOLDER: &str = "\u{1}CAIRN_ROOT";
/// Stands for `CARGO_HOME`.
pub const CARGO_HOME: &str = "\u{1}CAIRN_CARGO_HOME";
/// Stands for the target dir.
pub const TARGET: &str = "\u{1}CAIRN_TARGET";

/// Which root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Checkout,
    CargoHome,
    Target,
}

impl Kind {
    /// What the root's path is replaced by in keys.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Checkout => PLACEHOLDER,
            Kind::CargoHome => CARGO_HOME,
            Kind::Target => TARGET,
        }
    }

    /// What rustc writes instead of the root in artifacts (cargo's `trim-paths` forms).
    pub fn remap_to(self) -> &'static str {
        match self {
            Kind::Checkout => ".",
            Kind::CargoHome => "/cargo",
            Kind::Target => "/cargo/build-dir",
        }
    }

    fn from_placeholder(p: &str) -> Option<Kind> {
        [Kind::Checkout, Kind::CargoHome, Kind::Target].into_iter().find(|k| k.placeholder() == p)
    }
}

/// The roots of one compile, longest path first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rel {
    roots: Vec<(Kind, String)>,
}

impl Rel {
    /// `CAIRN_BASEDIR` only, from the environment, the working directory and the output folder.
    pub fn from_env(cwd: &Path, out_dir: &Path) -> Rel {
        Rel::from_basedirs(std::env::var("CAIRN_BASEDIR").ok().as_deref(), cwd, out_dir)
    }

    /// [`Rel::from_env`] with the variable's value given: the folder holding the working
    /// directory, else the one holding the output folder.
    pub fn from_basedirs(dirs: Option<&str>, cwd: &Path, out_dir: &Path) -> Rel {
        let r = Rel::new(dirs, cwd);
        if r.root().is_some() {
            return r;
        }
        Rel::new(dirs, out_dir)
    }

    /// Every root of a rustc compile: `CAIRN_BASEDIR`'s, else the inferred checkout, then
    /// `CARGO_HOME` and the target dir. `CAIRN_SHARE_PATHS=0` keeps `CAIRN_BASEDIR`'s only.
    pub fn for_rustc(cwd: &Path, out_dir: &Path, input: &str, target: Option<&str>) -> Rel {
        let mut r = Rel::from_env(cwd, out_dir);
        if std::env::var("CAIRN_SHARE_PATHS").as_deref() == Ok("0") {
            return r;
        }
        if r.root().is_none() && Path::new(input).is_relative() && cwd.components().count() > 1 {
            r.roots.push((Kind::Checkout, cwd.display().to_string()));
        }
        if let Some(home) = cargo_home(input) {
            r.roots.push((Kind::CargoHome, home));
        }
        if let Some(t) = target_root(out_dir, target) {
            r.roots.push((Kind::Target, t));
        }
        r.normalize();
        r
    }

    /// The roots of a build-script run and of the C compiles it runs: its package folder
    /// (`manifest_dir`, cargo's `CARGO_MANIFEST_DIR`) in place of the checkout, unless
    /// `CAIRN_BASEDIR` names one; `CARGO_HOME`; the target dir above `out_dir` (the script's
    /// `OUT_DIR`, `<T>/<profile>/build/<pkg>-<hash>/out`).
    pub fn for_package(cwd: &Path, out_dir: &Path, manifest_dir: Option<&str>) -> Rel {
        let mut r = Rel::from_env(cwd, out_dir);
        if std::env::var("CAIRN_SHARE_PATHS").as_deref() == Ok("0") {
            return r;
        }
        let pkg = manifest_dir.filter(|d| d.starts_with('/')).map(|d| d.trim_end_matches('/'));
        if let (None, Some(p)) = (r.root(), pkg) {
            r.roots.push((Kind::Checkout, p.to_string()));
        }
        if let Some(home) = cargo_home(&format!("{}/", pkg.unwrap_or(""))) {
            r.roots.push((Kind::CargoHome, home));
        }
        if let Some(t) = out_dir.parent().and_then(|build| target_root(build, None)) {
            r.roots.push((Kind::Target, t));
        }
        r.normalize();
        r
    }

    /// Whether any root is there (so artifacts are remapped and searched).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// `-ffile-prefix-map` arguments for a C compiler (gcc ≥ 8, clang ≥ 10), most specific
    /// last (the last that matches wins, as with rustc).
    pub fn prefix_map_args(&self) -> Vec<String> {
        self.roots.iter().rev().map(|(k, p)| format!("-ffile-prefix-map={p}={}", k.remap_to())).collect()
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
        Rel { roots: root.map(|r| vec![(Kind::Checkout, r)]).unwrap_or_default() }
    }

    /// Longest first (a target dir inside the checkout is replaced before the checkout), one
    /// root per path.
    fn normalize(&mut self) {
        self.roots.retain(|(_, p)| p.len() > 1 && p.starts_with('/'));
        let mut seen = Vec::new();
        self.roots.retain(|(_, p)| {
            let new = !seen.contains(p);
            seen.push(p.clone());
            new
        });
        self.roots.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
    }

    /// This Rel with a target dir root (tests build roots without a compile).
    #[cfg(test)]
    pub fn with_target(mut self, path: &str) -> Rel {
        self.roots.push((Kind::Target, path.to_string()));
        self.normalize();
        self
    }

    /// Every root, longest path first.
    pub fn roots(&self) -> impl Iterator<Item = (Kind, &str)> {
        self.roots.iter().map(|(k, p)| (*k, p.as_str()))
    }

    /// The checkout root, if any.
    pub fn root(&self) -> Option<&str> {
        self.get(Kind::Checkout)
    }

    /// A root's path, if this compile has it.
    pub fn get(&self, kind: Kind) -> Option<&str> {
        self.roots.iter().find(|(k, _)| *k == kind).map(|(_, p)| p.as_str())
    }

    /// `s` with every root (as a whole path prefix) replaced by its placeholder.
    pub fn rel(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (kind, root) in &self.roots {
            if out.contains(root.as_str()) {
                out = replace_path(&out, root, kind.placeholder());
            }
        }
        out
    }

    /// A stored relative path made absolute for this compile.
    pub fn abs(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (kind, root) in &self.roots {
            out = out.replace(kind.placeholder(), root);
        }
        out
    }

    /// The roots as stored in an entry: (placeholder, path).
    pub fn stored(&self) -> Vec<(String, String)> {
        self.roots.iter().map(|(k, p)| (k.placeholder().to_string(), p.clone())).collect()
    }

    /// The roots an entry was made with.
    pub fn from_stored(stored: &[(String, String)]) -> Rel {
        let mut r =
            Rel { roots: stored.iter().filter_map(|(ph, p)| Some((Kind::from_placeholder(ph)?, p.clone()))).collect() };
        r.normalize();
        r
    }

    /// `s`, written under the roots of `from`, with each made this compile's (a root this
    /// compile lacks keeps `from`'s path).
    pub fn relocate(&self, s: &str, from: &Rel) -> String {
        let mut out = from.rel(s);
        for (kind, root) in &from.roots {
            out = out.replace(kind.placeholder(), self.get(*kind).unwrap_or(root));
        }
        out
    }

    /// `--remap-path-prefix` arguments for rustc, most specific last (rustc applies the last
    /// that matches).
    pub fn remap_args(&self) -> Vec<String> {
        self.roots.iter().rev().map(|(k, p)| format!("--remap-path-prefix={p}={}", k.remap_to())).collect()
    }

    /// The placeholders of the roots whose absolute path occurs in `bytes`.
    pub fn found_in(&self, bytes: &[u8]) -> Vec<&'static str> {
        self.roots
            .iter()
            .filter(|(_, p)| memchr::memmem::find(bytes, p.as_bytes()).is_some())
            .map(|(k, _)| k.placeholder())
            .collect()
    }

    /// [`found_in`](Self::found_in) for bytes that come a chunk at a time.
    pub fn scan(&self) -> RootScan<'_> {
        let keep = self.roots.iter().map(|(_, p)| p.len()).max().unwrap_or(1).saturating_sub(1);
        RootScan { rel: self, found: vec![false; self.roots.len()], tail: Vec::new(), keep }
    }
}

/// What [`RootScan::read_file`] read.
pub struct ReadFile {
    pub hash: [u8; 32],
    pub len: u64,
    /// The placeholders of the roots the file names.
    pub found: Vec<&'static str>,
}

/// Which roots' paths occur in a stream of files read a chunk at a time ([`Rel::scan`]): a
/// path split across two chunks is found too.
pub struct RootScan<'a> {
    rel: &'a Rel,
    found: Vec<bool>,
    /// The end of the file's last chunk, as long as the longest root less one byte.
    tail: Vec<u8>,
    keep: usize,
}

impl RootScan<'_> {
    /// The next chunk of the current file.
    pub fn feed(&mut self, chunk: &[u8]) {
        let seam: Vec<u8> = if self.tail.is_empty() {
            Vec::new()
        } else {
            self.tail.iter().chain(&chunk[..chunk.len().min(self.keep)]).copied().collect()
        };
        for ((_, p), found) in self.rel.roots.iter().zip(&mut self.found) {
            if !*found {
                let p = p.as_bytes();
                *found = memchr::memmem::find(chunk, p).is_some() || memchr::memmem::find(&seam, p).is_some();
            }
        }
        if chunk.len() >= self.keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - self.keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let over = self.tail.len().saturating_sub(self.keep);
            self.tail.drain(..over);
        }
    }

    /// Reads `file` to its end a chunk at a time through `buf`, each chunk hashed and searched:
    /// its BLAKE3, its length and the placeholders of the roots it names. `go_on` sees the
    /// first chunk first; when it says no, the read stops there and gives `None`.
    pub fn read_file(
        &mut self,
        file: &mut impl std::io::Read,
        buf: &mut [u8],
        go_on: impl FnOnce(&[u8]) -> bool,
    ) -> std::io::Result<Option<ReadFile>> {
        let mut go_on = Some(go_on);
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        loop {
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if go_on.take().is_some_and(|f| !f(&buf[..n])) {
                let _ = self.end_file();
                return Ok(None);
            }
            hasher.update(&buf[..n]);
            self.feed(&buf[..n]);
            len += n as u64;
        }
        Ok(Some(ReadFile { hash: *hasher.finalize().as_bytes(), len, found: self.end_file() }))
    }

    /// The current file ended: the placeholders of the roots found in it, as
    /// [`Rel::found_in`] says them. The next chunk starts another file.
    pub fn end_file(&mut self) -> Vec<&'static str> {
        self.tail.clear();
        let found =
            self.rel.roots.iter().zip(&self.found).filter(|(_, f)| **f).map(|((k, _), _)| k.placeholder()).collect();
        self.found.fill(false);
        found
    }
}

/// Whether `s` is a root's placeholder (as a dependency set names a root its output is bound
/// to).
pub fn is_placeholder(s: &str) -> bool {
    Kind::from_placeholder(s).is_some()
}

/// `s` with placeholders shown as `<checkout>`, `<cargo-home>`, `<target>`, for people.
pub fn readable(s: &str) -> String {
    s.replace(PLACEHOLDER, "<checkout>").replace(CARGO_HOME, "<cargo-home>").replace(TARGET, "<target>")
}

/// `CARGO_HOME` as cargo resolves it for sources under it: the part of `input` before
/// `/registry/src/` or `/git/checkouts/`, else `$CARGO_HOME`, else `$HOME/.cargo`.
fn cargo_home(input: &str) -> Option<String> {
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some(i) = input.find(marker) {
            return Some(input[..i].to_string());
        }
    }
    match std::env::var("CARGO_HOME") {
        Ok(h) if h.starts_with('/') => Some(h.trim_end_matches('/').to_string()),
        _ => std::env::var("HOME")
            .ok()
            .filter(|h| h.starts_with('/'))
            .map(|h| format!("{}/.cargo", h.trim_end_matches('/'))),
    }
}

/// The target dir of an `--out-dir` in cargo's layout: `<T>[/<triple>]/<profile>/deps`,
/// `…/<profile>/build/<pkg>-<hash>`, `…/<profile>/examples`.
fn target_root(out_dir: &Path, target: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = out_dir
        .components()
        .map(|c| match c {
            Component::Normal(n) => n.to_str().unwrap_or("\u{0}"),
            _ => "",
        })
        .collect();
    let n = parts.len();
    let marker = if n >= 2 && matches!(parts[n - 1], "deps" | "examples") {
        n - 1
    } else if n >= 3 && parts[n - 2] == "build" {
        n - 2
    } else {
        return None;
    };
    // `marker - 1` is the profile folder; the target dir is above it, and above the triple.
    let mut end = marker.checked_sub(1)?;
    let triple = target.map(|t| Path::new(t).file_stem().and_then(|s| s.to_str()).unwrap_or(t));
    if end >= 1 && triple.is_some_and(|t| parts[end - 1] == t) {
        end -= 1;
    }
    let root: std::path::PathBuf = out_dir.components().take(end).collect();
    (root.components().count() > 1).then(|| root.display().to_string())
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

/// Replaces every occurrence of `from` with `to` (an output folder moved between target dirs).
pub fn rewrite_bytes(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    if from == to || from.is_empty() {
        return bytes.to_vec();
    }
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
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
        let r = Rel::from_basedirs(Some("/ci"), Path::new("/reg/serde"), Path::new("/ci/job7/target/debug/deps"));
        assert_eq!(r.root(), Some("/ci/job7"), "a registry crate built into the checkout");
    }

    #[test]
    fn a_root_split_across_chunks_is_found() {
        let r = Rel::from_basedirs(Some("/ci"), Path::new("/ci/job7/proj"), Path::new("/ci/job7/target/debug/deps"));
        let bytes = b"\0\0some debuginfo /ci/job7/src/lib.rs and more\0".to_vec();
        let whole = r.found_in(&bytes);
        assert!(!whole.is_empty());
        for cut in 0..bytes.len() {
            for second in cut..bytes.len() {
                let mut scan = r.scan();
                scan.feed(&bytes[..cut]);
                scan.feed(&bytes[cut..second]);
                scan.feed(&bytes[second..]);
                assert_eq!(scan.end_file(), whole, "cut at {cut} and {second}");
            }
        }
        // Two files: the end of one and the start of the next do not make a path.
        let mut scan = r.scan();
        scan.feed(b"xx/ci/jo");
        assert!(scan.end_file().is_empty());
        scan.feed(b"b7/src");
        assert!(scan.end_file().is_empty());
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

    #[test]
    fn the_target_dir_is_found_in_cargos_layouts() {
        let t = |o: &str, tr: Option<&str>| target_root(Path::new(o), tr);
        assert_eq!(t("/w/target/debug/deps", None).as_deref(), Some("/w/target"));
        assert_eq!(t("/w/target/release/build/serde-0123abcd", None).as_deref(), Some("/w/target"));
        assert_eq!(
            t("/w/t/x86_64-unknown-linux-gnu/debug/deps", Some("x86_64-unknown-linux-gnu")).as_deref(),
            Some("/w/t")
        );
        assert_eq!(t("/w/t/my/debug/deps", Some("/specs/my.json")).as_deref(), Some("/w/t"));
        assert_eq!(t("/w/t/debug/examples", None).as_deref(), Some("/w/t"));
        assert_eq!(t("/tmp/out", None), None);
        assert_eq!(t("/debug/deps", None), None, "never the whole file system");
    }

    #[test]
    fn cargo_home_comes_from_the_registry_path_first() {
        assert_eq!(
            cargo_home("/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde-1.0.0/src/lib.rs")
                .as_deref(),
            Some("/home/u/.cargo")
        );
        assert_eq!(cargo_home("/opt/ch/git/checkouts/x-1/abc/src/lib.rs").as_deref(), Some("/opt/ch"));
    }

    #[test]
    fn nested_roots_each_get_their_placeholder_and_come_back() {
        let r = Rel::for_rustc(Path::new("/home/a/ws"), Path::new("/home/a/ws/target/debug/deps"), "src/lib.rs", None);
        assert_eq!(r.root(), Some("/home/a/ws"));
        assert_eq!(r.get(Kind::Target), Some("/home/a/ws/target"));
        let out = r.rel("-L dependency=/home/a/ws/target/debug/deps /home/a/ws/src/lib.rs");
        assert_eq!(out, format!("-L dependency={TARGET}/debug/deps {PLACEHOLDER}/src/lib.rs"));
        let b = Rel::for_rustc(Path::new("/srv/b"), Path::new("/tmp/tb/debug/deps"), "src/lib.rs", None);
        assert_eq!(b.abs(&out), "-L dependency=/tmp/tb/debug/deps /srv/b/src/lib.rs");
        assert_eq!(
            b.relocate("/home/a/ws/target/debug/deps/x.rlib /home/a/ws/src/a.rs", &Rel::from_stored(&r.stored())),
            "/tmp/tb/debug/deps/x.rlib /srv/b/src/a.rs"
        );
        // rustc takes the last remap that matches: the target dir must come after the checkout.
        let args = r.remap_args();
        let pos = |p: &str| args.iter().position(|a| a.starts_with(&format!("--remap-path-prefix={p}="))).unwrap();
        assert!(pos("/home/a/ws") < pos("/home/a/ws/target"), "{args:?}");
        assert_eq!(r.found_in(b"..../home/a/ws/target/x...."), vec![TARGET, PLACEHOLDER]);
        assert!(r.found_in(b"./src/lib.rs /cargo/build-dir/x").is_empty());
    }

    #[test]
    fn an_absolute_input_has_no_inferred_checkout() {
        let r = Rel::for_rustc(
            Path::new("/c/registry/src/i/serde-1.0.0"),
            Path::new("/w/target/debug/deps"),
            "/c/registry/src/i/serde-1.0.0/src/lib.rs",
            None,
        );
        assert_eq!(r.root(), None);
        assert_eq!(r.get(Kind::CargoHome), Some("/c"));
        assert_eq!(r.rel("/c/registry/src/i/serde-1.0.0"), format!("{CARGO_HOME}/registry/src/i/serde-1.0.0"));
    }

    #[test]
    fn a_build_script_run_has_its_package_home_and_target_dir() {
        let r = Rel::for_package(
            Path::new("/h/.cargo/registry/src/i/zstd-sys-2.0.0"),
            Path::new("/w/target/debug/build/zstd-sys-0123/out"),
            Some("/h/.cargo/registry/src/i/zstd-sys-2.0.0"),
        );
        assert_eq!(r.root(), Some("/h/.cargo/registry/src/i/zstd-sys-2.0.0"));
        assert_eq!(r.get(Kind::CargoHome), Some("/h/.cargo"));
        assert_eq!(r.get(Kind::Target), Some("/w/target"));
        let flags = r.prefix_map_args();
        assert_eq!(flags.last().unwrap(), "-ffile-prefix-map=/h/.cargo/registry/src/i/zstd-sys-2.0.0=.");
    }
    #[test]
    fn rewrites_the_output_folder() {
        const D: &str = "/t/debug/deps/foo-1.d: src/lib.rs\n\n/t/debug/deps/libfoo-1.rmeta: src/lib.rs\n";
        let out = rewrite_bytes(D.as_bytes(), "/t/debug/deps", "/other/debug/deps");
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("/other/debug/deps/foo-1.d:"));
        assert!(!s.contains("/t/debug"));
    }
}
