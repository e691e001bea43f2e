//! An action's input root: files and symbolic links by path, turned into the protocol's
//! Merkle tree of `Directory` messages (entries sorted by name, each folder named by the
//! digest of its encoding), so equal inputs give an equal root digest on every machine.

use std::collections::BTreeMap;
use std::fmt;

use super::digest;
use super::proto::{Digest, Directory, DirectoryNode, FileNode, SymlinkNode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { digest: Digest, executable: bool },
    Symlink(String),
}

/// Two different things asked for at one path, or a path that cannot be in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError(pub String);

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TreeError {}

/// Input paths, relative to the root, `/`-separated.
#[derive(Debug, Clone, Default)]
pub struct InputTree {
    nodes: BTreeMap<String, Node>,
}

impl InputTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path`; the same node twice is fine, another node at a taken path is an error.
    pub fn add(&mut self, path: &str, node: Node) -> Result<(), TreeError> {
        check(path)?;
        if let Some(old) = self.nodes.get(path) {
            return if *old == node { Ok(()) } else { Err(TreeError(format!("two different inputs at {path}"))) };
        }
        // A path may not run through a file, nor a file sit where a folder is.
        let mut prefix = String::new();
        for c in path.split('/') {
            if !prefix.is_empty() {
                if self.nodes.contains_key(&prefix) {
                    return Err(TreeError(format!("{path} runs through the input {prefix}")));
                }
                prefix.push('/');
            }
            prefix.push_str(c);
        }
        let below = format!("{path}/");
        if self.nodes.range(below.clone()..).next().is_some_and(|(k, _)| k.starts_with(&below)) {
            return Err(TreeError(format!("{path} is a folder of other inputs")));
        }
        self.nodes.insert(path.to_string(), node);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// The root's digest and every folder's encoding (the root's among them).
    pub fn build(&self) -> (Digest, Vec<(Digest, Vec<u8>)>) {
        // Folder path ("" for the root) → its entries.
        let mut dirs: BTreeMap<String, Directory> = BTreeMap::new();
        dirs.insert(String::new(), Directory::default());
        for (path, node) in &self.nodes {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
            let mut p = String::new();
            for c in parent.split('/').filter(|c| !c.is_empty()) {
                if !p.is_empty() {
                    p.push('/');
                }
                p.push_str(c);
                dirs.entry(p.clone()).or_default();
            }
            let d = dirs.entry(parent.to_string()).or_default();
            match node {
                Node::File { digest, executable } => d.files.push(FileNode {
                    name: name.to_string(),
                    digest: Some(digest.clone()),
                    is_executable: *executable,
                }),
                Node::Symlink(t) => d.symlinks.push(SymlinkNode { name: name.to_string(), target: t.clone() }),
            }
        }
        // Deepest first, so each folder's children are done before it.
        let mut order: Vec<String> = dirs.keys().cloned().collect();
        order.sort_by_key(|p| std::cmp::Reverse(if p.is_empty() { 0 } else { p.matches('/').count() + 1 }));
        let mut blobs = Vec::new();
        let mut root = None;
        for p in order {
            let mut d = dirs.remove(&p).unwrap_or_default();
            d.files.sort_by(|a, b| a.name.cmp(&b.name));
            d.symlinks.sort_by(|a, b| a.name.cmp(&b.name));
            d.directories.sort_by(|a, b| a.name.cmp(&b.name));
            let (dg, bytes) = digest::of_message(&d);
            blobs.push((dg.clone(), bytes));
            if p.is_empty() {
                root = Some(dg);
            } else {
                let (parent, name) = p.rsplit_once('/').unwrap_or(("", &p));
                dirs.entry(parent.to_string())
                    .or_default()
                    .directories
                    .push(DirectoryNode { name: name.to_string(), digest: Some(dg) });
            }
        }
        (root.unwrap_or_else(|| digest::of_message(&Directory::default()).0), blobs)
    }
}

fn check(path: &str) -> Result<(), TreeError> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(TreeError(format!("{path:?} is not a relative path inside the input root")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn file(b: &[u8]) -> Node {
        Node::File { digest: digest::of(b), executable: false }
    }

    #[test]
    fn the_root_digest_depends_on_contents_and_names_not_on_insertion_order() {
        let mut a = InputTree::new();
        a.add("src/lib.rs", file(b"fn x() {}")).unwrap();
        a.add("src/m/mod.rs", file(b"")).unwrap();
        a.add("Cargo.toml", file(b"[package]")).unwrap();
        let mut b = InputTree::new();
        b.add("Cargo.toml", file(b"[package]")).unwrap();
        b.add("src/m/mod.rs", file(b"")).unwrap();
        b.add("src/lib.rs", file(b"fn x() {}")).unwrap();
        assert_eq!(a.build().0, b.build().0);
        let mut c = b.clone();
        c.add("src/other.rs", file(b"")).unwrap();
        assert_ne!(a.build().0, c.build().0);
        let (root, blobs) = a.build();
        assert_eq!(blobs.len(), 3, "root, src, src/m");
        let (_, top) = blobs.iter().find(|(d, _)| *d == root).unwrap();
        let top = Directory::decode(top.as_slice()).unwrap();
        assert_eq!(top.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["Cargo.toml"]);
        assert_eq!(top.directories[0].name, "src");
    }

    #[test]
    fn conflicting_and_escaping_paths_are_refused() {
        let mut t = InputTree::new();
        t.add("a/b", file(b"1")).unwrap();
        t.add("a/b", file(b"1")).unwrap();
        assert!(t.add("a/b", file(b"2")).is_err());
        assert!(t.add("a/b/c", file(b"1")).is_err());
        assert!(t.add("a", file(b"1")).is_err());
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b"] {
            assert!(t.add(bad, file(b"")).is_err(), "{bad}");
        }
    }
}
