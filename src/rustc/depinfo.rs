//! rustc's dep-info (`.d`) files: which source files and environment variables a compile read,
//! and rewriting the paths in them when outputs are restored into another target folder.

/// What a dep-info file says a compile depended on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DepInfo {
    /// Every source file, as written in the file (relative to the working dir, or absolute).
    pub files: Vec<String>,
    /// Every environment variable read with `env!`/`option_env!`/`tracked_env`.
    pub env: Vec<String>,
}

/// Parses dep-info text.
///
/// Sources are the phony targets (`path:` with nothing after it) that rustc writes for every
/// input, in order. Paths escape spaces as `\ `.
pub fn parse(text: &str) -> DepInfo {
    let mut d = DepInfo::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# env-dep:") {
            let name = rest.split_once('=').map(|(n, _)| n).unwrap_or(rest);
            if !d.env.iter().any(|e| e == name) {
                d.env.push(name.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(target) = line.strip_suffix(':') {
            let path = target.replace("\\ ", " ");
            if !d.files.contains(&path) {
                d.files.push(path);
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "/t/debug/deps/foo-1.d: src/lib.rs src/a\\ b.rs /reg/x.txt\n\n\
/t/debug/deps/libfoo-1.rmeta: src/lib.rs src/a\\ b.rs /reg/x.txt\n\n\
src/lib.rs:\nsrc/a\\ b.rs:\n/reg/x.txt:\n\n\
# env-dep:CARGO_PKG_VERSION=1.0.0\n# env-dep:MY_FLAG\n";

    #[test]
    fn finds_sources_and_env_deps() {
        let d = parse(D);
        assert_eq!(d.files, vec!["src/lib.rs", "src/a b.rs", "/reg/x.txt"]);
        assert_eq!(d.env, vec!["CARGO_PKG_VERSION", "MY_FLAG"]);
    }
}
