//! The base key of a C or C++ compile: everything known before it runs. The list is mirrored
//! in docs/cache-key.md ("C and C++ objects").

use std::path::Path;

use super::args;
use crate::engine::basedir::Rel;
use crate::engine::keys::KeyHasher;
use crate::key::Key;
use crate::protocol::frontends::Lang;

/// Variables gcc and clang read that change what they compile.
pub const KEYED_ENV: [&str; 8] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_COMPARE_DEBUG",
];

/// Everything the base key covers, gathered by [`gather`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcInputs {
    /// The compiler's identity (engine/linker.rs).
    pub compiler: [u8; 32],
    /// The compiler command cc-rs ran (`gcc`, `ccache gcc -m32`).
    pub command: String,
    pub lang: Lang,
    /// Whether the roots are written as fixed prefixes (`-ffile-prefix-map`).
    pub prefix_map: bool,
    /// Whether cairn compiles it with `-fdirectives-only`, so that preprocessing it here and
    /// compiling the text elsewhere (cc/remote.rs) writes the same object as one compile.
    pub directives_only: bool,
    /// The working directory, root-relative.
    pub cwd: String,
    /// Every argument but the `-o` path, root-relative, in order.
    pub args: Vec<String>,
    /// [`KEYED_ENV`] in order, with their values (root-relative) or `None` when unset.
    pub env: Vec<(&'static str, Option<String>)>,
}

/// Gathers the inputs of a compile from its command line and this process's variables; the
/// switches cairn adds (`prefix_map`, `directives_only`) are the caller's to set.
pub fn gather(lang: Lang, real: &[String], compiler: [u8; 32], inv: &args::Compile, cwd: &Path, rel: &Rel) -> CcInputs {
    CcInputs {
        compiler,
        command: real.join(" "),
        lang,
        prefix_map: false,
        directives_only: false,
        cwd: rel.rel(&cwd.display().to_string()),
        args: inv.keyed_args.iter().map(|a| rel.rel(a)).collect(),
        env: KEYED_ENV.iter().map(|k| (*k, std::env::var(k).ok().map(|v| rel.rel(&v)))).collect(),
    }
}

/// Hashes the inputs.
pub fn base_key(i: &CcInputs) -> Key {
    let mut h = KeyHasher::new("cc-base");
    h.field("compiler", &i.compiler);
    h.field("command", i.command.as_bytes());
    h.field("lang", if i.lang == Lang::C { b"c" } else { b"c++" });
    h.field("prefix-map", if i.prefix_map { b"roots" } else { b"none" });
    // Only where it is added: the keys of other compiles stay what they were.
    if i.directives_only {
        h.field("directives-only", b"added");
    }
    h.field("cwd", i.cwd.as_bytes());
    for a in &i.args {
        h.field("arg", a.as_bytes());
    }
    for (k, v) in &i.env {
        h.field("env", k.as_bytes());
        match v {
            Some(v) => h.field("env-value", v.as_bytes()),
            None => h.field("env-unset", b""),
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> CcInputs {
        CcInputs {
            compiler: [1; 32],
            command: "gcc".into(),
            lang: Lang::C,
            prefix_map: true,
            directives_only: true,
            cwd: "/reg/zstd-sys".into(),
            args: vec!["-O2".into(), "-c".into(), "zstd.c".into()],
            env: KEYED_ENV.iter().map(|k| (*k, None)).collect(),
        }
    }

    #[test]
    fn changing_any_input_changes_the_key() {
        let k = base_key(&inputs());
        type Change = Box<dyn Fn(&mut CcInputs)>;
        let mut changes: Vec<Change> = vec![
            Box::new(|i| i.compiler[0] ^= 1),
            Box::new(|i| i.command.push_str(" -m32")),
            Box::new(|i| i.lang = Lang::Cxx),
            Box::new(|i| i.prefix_map = false),
            Box::new(|i| i.directives_only = false),
            Box::new(|i| i.cwd.push('x')),
            Box::new(|i| i.args[0].push('x')),
            Box::new(|i| i.args.swap(0, 1)),
            Box::new(|i| i.args.push("-DX".into())),
        ];
        for n in 0..KEYED_ENV.len() {
            changes.push(Box::new(move |i| i.env[n].1 = Some(String::new())));
            changes.push(Box::new(move |i| i.env[n].1 = Some("x".into())));
        }
        for (n, c) in changes.iter().enumerate() {
            let mut i = inputs();
            c(&mut i);
            assert_ne!(base_key(&i), k, "change {n}");
        }
        assert_eq!(base_key(&inputs()), k, "stable");
    }
}
