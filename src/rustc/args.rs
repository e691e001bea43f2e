//! Reading a rustc command line: is it a cacheable compile, a compile we must not cache (and
//! why), or not a compile at all?
//!
//! Pure: no I/O. The result keeps the arguments in a form the key can use directly.

use std::ffi::OsString;

/// What a rustc command line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// A compile cairn can cache.
    Cacheable(Box<Invocation>),
    /// A compile cairn runs as it is, with the reason (logged, counted in stats).
    NotCacheable(Reason),
    /// Not a compile (`-vV`, `--print`, reading stdin): passed straight to rustc, unlogged.
    NotCompilation,
}

/// Why a compile is not cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A crate type rustc does not document (cairn does not guess at its outputs).
    CrateType(String),
    /// `-C incremental`: rustc keeps its own cache in the target dir.
    Incremental,
    /// `--test` harness builds link a binary.
    TestHarness,
    /// No `--out-dir`, or `-o`, or an `--emit` with an explicit path: outputs are not where
    /// cairn can find them.
    OutputLocation,
    /// No `--crate-name` or no `--crate-type`.
    MissingCrateInfo,
    /// More than one input file.
    MultipleInputs,
    /// `@argfile` arguments.
    ArgFile,
    /// A non-UTF-8 argument.
    NonUtf8,
    /// `--sysroot` set by hand.
    CustomSysroot,
    /// No dep-info among the outputs: cairn could not tell which sources the compile read.
    NoDepInfo,
}

impl Reason {
    /// Short, stable text for logs and stats.
    pub fn as_str(&self) -> String {
        match self {
            Reason::CrateType(t) => format!("crate-type-{t}"),
            Reason::Incremental => "incremental".into(),
            Reason::TestHarness => "test-harness".into(),
            Reason::OutputLocation => "output-location".into(),
            Reason::MissingCrateInfo => "missing-crate-info".into(),
            Reason::MultipleInputs => "multiple-inputs".into(),
            Reason::ArgFile => "argfile".into(),
            Reason::NonUtf8 => "non-utf8-argument".into(),
            Reason::CustomSysroot => "custom-sysroot".into(),
            Reason::NoDepInfo => "no-dep-info".into(),
        }
    }
}

/// A cacheable compile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub crate_name: String,
    pub crate_types: Vec<String>,
    /// The source file, as given (relative to the working directory or absolute).
    pub input: String,
    pub out_dir: String,
    /// `-C extra-filename`, "" when absent.
    pub extra_filename: String,
    /// `--target`, when given.
    pub target: Option<String>,
    /// `--extern name=path` pairs (path `None` for `--extern name`).
    pub externs: Vec<(String, Option<String>)>,
    /// Names of `-l static=NAME` libraries and `-L native=`/`-L all=`/`-L` search paths.
    pub static_libs: Vec<String>,
    pub native_paths: Vec<String>,
    /// Names of every `-l` library, whatever its kind (for linking crates).
    pub libs: Vec<String>,
    /// `-C linker=`, when given.
    pub linker: Option<String>,
    /// Every `-C link-arg=`/`-C link-args=` value.
    pub link_args: Vec<String>,
    /// Arguments that enter the key as they are, in order (flag and value joined by `=`).
    pub keyed_args: Vec<String>,
    /// `--cfg` and `--check-cfg` values, sorted: their order does not matter to rustc.
    pub cfgs: Vec<String>,
}

/// Crate types cairn caches: all that rustc documents.
const CACHEABLE_TYPES: [&str; 7] = ["lib", "rlib", "staticlib", "bin", "proc-macro", "dylib", "cdylib"];

/// Crate types whose compile runs the linker.
const LINKED_TYPES: [&str; 4] = ["bin", "proc-macro", "dylib", "cdylib"];

impl Invocation {
    /// Whether this compile links (so the linker and native libraries enter the key).
    pub fn links(&self) -> bool {
        self.crate_types.iter().any(|t| LINKED_TYPES.contains(&t.as_str()))
    }
}

/// Flags whose value is a separate argument unless joined with `=`.
const TAKES_VALUE: [&str; 27] = [
    "--crate-name",
    "--edition",
    "--error-format",
    "--json",
    "--crate-type",
    "--emit",
    "--out-dir",
    "-o",
    "-L",
    "-l",
    "--cfg",
    "--check-cfg",
    "--extern",
    "--cap-lints",
    "--target",
    "-C",
    "--codegen",
    "-A",
    "-W",
    "-D",
    "-F",
    "--force-warn",
    "--print",
    "--remap-path-prefix",
    "--color",
    "--diagnostic-width",
    "-Z",
];

/// The `--crate-name` of a command line, for logs ("-" when there is none).
pub fn crate_name_of(args: &[OsString]) -> String {
    let mut it = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        if a == "--crate-name" {
            return it.next().unwrap_or("-").to_string();
        }
        if let Some(v) = a.strip_prefix("--crate-name=") {
            return v.to_string();
        }
    }
    "-".into()
}

/// Flag/value pairs and positional inputs.
type Split = (Vec<(String, Option<String>)>, Vec<String>);

/// Splits a command line into (flag, value) pairs and positional inputs, or says at once what
/// it is when that is already clear (stdin input, an argument file, non-UTF-8).
fn split(args: &[OsString]) -> Result<Split, Classified> {
    let mut strs = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str() {
            Some(s) => strs.push(s.to_string()),
            None => return Err(Classified::NotCacheable(Reason::NonUtf8)),
        }
    }
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    let mut inputs = Vec::new();
    let mut it = strs.into_iter();
    while let Some(a) = it.next() {
        if a == "-" {
            return Err(Classified::NotCompilation);
        }
        if a.starts_with('@') {
            return Err(Classified::NotCacheable(Reason::ArgFile));
        }
        if !a.starts_with('-') {
            inputs.push(a);
            continue;
        }
        if let Some((flag, value)) = a.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            pairs.push((flag.to_string(), Some(value.to_string())));
            continue;
        }
        if TAKES_VALUE.contains(&a.as_str()) {
            pairs.push((a, it.next()));
            continue;
        }
        // Short flags with the value attached: -Copt-level=3, -Lpath, -lfoo, -Zflag, -Wlint.
        let short = ["-C", "-L", "-l", "-Z", "-A", "-W", "-D", "-F"].iter().find(|p| a.starts_with(**p) && a.len() > 2);
        match short {
            Some(p) => pairs.push((p.to_string(), Some(a[2..].to_string()))),
            None => pairs.push((a, None)),
        }
    }
    Ok((pairs, inputs))
}

/// What any compile says of its output, cacheable or not: crate name and types, out dir,
/// extra filename and externs (the rest of the fields are left empty). The dependency list of
/// an rlib (graph.rs) needs these even for compiles cairn does not cache.
pub fn outline(args: &[OsString]) -> Option<Invocation> {
    let (pairs, inputs) = split(args).ok()?;
    let mut inv = Invocation { input: inputs.into_iter().next()?, ..Invocation::default() };
    for (flag, value) in pairs {
        let v = value.unwrap_or_default();
        match flag.as_str() {
            "--crate-name" => inv.crate_name = v,
            "--crate-type" => inv.crate_types.extend(v.split(',').filter(|t| !t.is_empty()).map(str::to_string)),
            "--out-dir" => inv.out_dir = v,
            "-C" | "--codegen" => {
                if let Some(x) = v.strip_prefix("extra-filename=") {
                    inv.extra_filename = x.to_string();
                }
            }
            "--extern" => {
                if let Some((n, p)) = v.split_once('=') {
                    inv.externs.push((n.to_string(), Some(p.to_string())));
                }
            }
            _ => {}
        }
    }
    (!inv.crate_name.is_empty() && !inv.out_dir.is_empty()).then_some(inv)
}

/// Classifies `args` (everything after the rustc path).
pub fn classify(args: &[OsString]) -> Classified {
    let (pairs, mut inputs) = match split(args) {
        Ok(x) => x,
        Err(c) => return c,
    };
    for (flag, _) in &pairs {
        match flag.as_str() {
            "--print" | "-V" | "--version" | "-vV" | "--explain" | "-h" | "--help" => {
                return Classified::NotCompilation
            }
            _ => {}
        }
    }
    if inputs.is_empty() {
        return Classified::NotCompilation;
    }
    if inputs.len() > 1 {
        return Classified::NotCacheable(Reason::MultipleInputs);
    }
    let mut inv = Invocation { input: inputs.remove(0), ..Invocation::default() };
    for (flag, value) in pairs {
        let v = value.clone().unwrap_or_default();
        match flag.as_str() {
            "--crate-name" => {
                inv.crate_name = v.clone();
                inv.keyed_args.push(format!("{flag}={v}"));
            }
            "--crate-type" => {
                for t in v.split(',').filter(|t| !t.is_empty()) {
                    inv.crate_types.push(t.to_string());
                }
                inv.keyed_args.push(format!("{flag}={v}"));
            }
            "--out-dir" => inv.out_dir = v,
            "-o" => return Classified::NotCacheable(Reason::OutputLocation),
            "--test" => return Classified::NotCacheable(Reason::TestHarness),
            "--sysroot" => return Classified::NotCacheable(Reason::CustomSysroot),
            "--emit" => {
                if v.split(',').any(|e| e.contains('=')) {
                    return Classified::NotCacheable(Reason::OutputLocation);
                }
                inv.keyed_args.push(format!("{flag}={v}"));
            }
            "-C" | "--codegen" => {
                let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                match k {
                    "incremental" => return Classified::NotCacheable(Reason::Incremental),
                    "extra-filename" => {
                        inv.extra_filename = val.to_string();
                        inv.keyed_args.push(format!("-C={v}"));
                    }
                    "linker" => {
                        inv.linker = Some(val.to_string());
                        inv.keyed_args.push(format!("-C={v}"));
                    }
                    "link-arg" | "link-args" => {
                        inv.link_args.push(val.to_string());
                        inv.keyed_args.push(format!("-C={v}"));
                    }
                    _ => inv.keyed_args.push(format!("-C={v}")),
                }
            }
            "-L" => {
                let (kind, path) = match v.split_once('=') {
                    Some((k, p)) if ["dependency", "crate", "native", "framework", "all"].contains(&k) => (k, p),
                    _ => ("all", v.as_str()),
                };
                // Dependency paths only say where cargo put the deps (they differ per target
                // dir); the deps themselves enter the key through --extern contents.
                if kind != "dependency" && kind != "crate" {
                    inv.native_paths.push(path.to_string());
                    inv.keyed_args.push(format!("-L={v}"));
                }
            }
            "-l" => {
                // KIND[:MODIFIERS]=NAME[:RENAME] or NAME
                let name = v.rsplit_once('=').map(|(_, n)| n).unwrap_or(v.as_str());
                inv.libs.push(name.split(':').next().unwrap_or(name).to_string());
                if let Some(name) = v.strip_prefix("static=").or_else(|| v.strip_prefix("static:+bundle=")) {
                    inv.static_libs.push(name.split(':').next().unwrap_or(name).to_string());
                }
                inv.keyed_args.push(format!("-l={v}"));
            }
            "--extern" => {
                let (name, path) = match v.split_once('=') {
                    Some((n, p)) => (n.to_string(), Some(p.to_string())),
                    None => (v.clone(), None),
                };
                inv.keyed_args.push(format!("--extern={name}"));
                inv.externs.push((name, path));
            }
            "--cfg" | "--check-cfg" => inv.cfgs.push(format!("{flag}={v}")),
            "--target" => {
                inv.target = Some(v.clone());
                inv.keyed_args.push(format!("{flag}={v}"));
            }
            // Presentation only: they change how diagnostics look on a terminal, not the
            // artifacts, and cargo's JSON output ignores them.
            "--color" | "--diagnostic-width" => {}
            _ => inv.keyed_args.push(match value {
                Some(v) => format!("{flag}={v}"),
                None => flag,
            }),
        }
    }
    if inv.crate_name.is_empty() || inv.crate_types.is_empty() {
        return Classified::NotCacheable(Reason::MissingCrateInfo);
    }
    if inv.out_dir.is_empty() {
        return Classified::NotCacheable(Reason::OutputLocation);
    }
    if let Some(t) = inv.crate_types.iter().find(|t| !CACHEABLE_TYPES.contains(&t.as_str())) {
        return Classified::NotCacheable(Reason::CrateType(t.clone()));
    }
    if !inv.keyed_args.iter().any(|a| a.starts_with("--emit=") && a.contains("dep-info")) {
        return Classified::NotCacheable(Reason::NoDepInfo);
    }
    inv.cfgs.sort();
    Classified::Cacheable(Box::new(inv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    const CARGO_LIB: &str = "--crate-name itoa --edition=2021 /reg/itoa-1.0.19/src/lib.rs --error-format=json \
        --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type lib --emit=dep-info,metadata,link \
        -C embed-bitcode=no -C debuginfo=2 --cfg feature=\"std\" --cfg feature=\"default\" \
        -C metadata=a9c1468c251272ca -C extra-filename=-6c1e270c698fa6a6 --out-dir /t/debug/deps \
        -L dependency=/t/debug/deps --extern serde=/t/debug/deps/libserde-1.rmeta --cap-lints allow --color=always";

    fn inv(s: &str) -> Invocation {
        match classify(&args(s)) {
            Classified::Cacheable(i) => *i,
            other => panic!("not cacheable: {other:?}"),
        }
    }

    #[test]
    fn reads_a_cargo_library_compile() {
        let i = inv(CARGO_LIB);
        assert_eq!(i.crate_name, "itoa");
        assert_eq!(i.crate_types, vec!["lib"]);
        assert_eq!(i.input, "/reg/itoa-1.0.19/src/lib.rs");
        assert_eq!(i.out_dir, "/t/debug/deps");
        assert_eq!(i.extra_filename, "-6c1e270c698fa6a6");
        assert_eq!(i.externs, vec![("serde".into(), Some("/t/debug/deps/libserde-1.rmeta".into()))]);
        assert!(
            !i.keyed_args.iter().any(|a| a.contains("/t/debug")),
            "no target-dir paths in the key: {:?}",
            i.keyed_args
        );
        assert!(!i.keyed_args.iter().any(|a| a.contains("color")));
    }

    #[test]
    fn cfg_order_does_not_matter() {
        let a = inv(CARGO_LIB);
        let b = inv(&CARGO_LIB.replace(
            "--cfg feature=\"std\" --cfg feature=\"default\"",
            "--cfg feature=\"default\" --cfg feature=\"std\"",
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn refuses_what_it_cannot_cache_and_says_why() {
        let cases = [
            (CARGO_LIB.replace("--crate-type lib", "--crate-type weird"), Reason::CrateType("weird".into())),
            (format!("{CARGO_LIB} -C incremental=/t/inc"), Reason::Incremental),
            (format!("{CARGO_LIB} --test"), Reason::TestHarness),
            (CARGO_LIB.replace("--out-dir /t/debug/deps", "-o /t/x"), Reason::OutputLocation),
            (format!("{CARGO_LIB} other.rs"), Reason::MultipleInputs),
            (format!("{CARGO_LIB} @args"), Reason::ArgFile),
            (CARGO_LIB.replace("--emit=dep-info,metadata,link", "--emit=metadata,link"), Reason::NoDepInfo),
        ];
        for (cmd, why) in cases {
            assert_eq!(classify(&args(&cmd)), Classified::NotCacheable(why.clone()), "{why:?}");
        }
    }

    #[test]
    fn linking_crates_are_cacheable_and_say_what_they_link() {
        for t in ["bin", "proc-macro", "dylib", "cdylib"] {
            let i = inv(&format!(
                "{} -C linker=/usr/bin/clang -C link-arg=/x/y.o -lz -l dylib=ssl",
                CARGO_LIB.replace("--crate-type lib", &format!("--crate-type {t}"))
            ));
            assert!(i.links(), "{t}");
            assert_eq!(i.linker.as_deref(), Some("/usr/bin/clang"));
            assert_eq!(i.link_args, vec!["/x/y.o"]);
            assert_eq!(i.libs, vec!["z", "ssl"]);
        }
        assert!(!inv(CARGO_LIB).links());
    }

    #[test]
    fn queries_are_not_compilations() {
        for cmd in ["-vV", "- --crate-name ___ --print=file-names --crate-type lib", "--version", "--print sysroot"] {
            assert_eq!(classify(&args(cmd)), Classified::NotCompilation, "{cmd}");
        }
    }

    #[test]
    fn short_flags_with_attached_values() {
        let i = inv("--crate-name a a.rs --crate-type rlib --emit=dep-info,link --out-dir o -Copt-level=3 -Lnative=/n -lstatic=foo");
        assert!(i.keyed_args.contains(&"-C=opt-level=3".to_string()));
        assert_eq!(i.native_paths, vec!["/n"]);
        assert_eq!(i.static_libs, vec!["foo"]);
    }
}
