//! Reading a C or C++ compiler command line: is it one source compiled to one object file
//! (cacheable), or anything else (passed to the compiler as it is, with the reason)?
//!
//! Pure: no I/O.

use std::ffi::OsString;

/// A compile of one source file to one object file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compile {
    /// The source file, as given.
    pub input: String,
    /// The `-o` path, as given.
    pub output: String,
    /// Every argument but `-o` and `-MF` with their values, in order: what enters the key
    /// (plus the `-o` path when it is written into a dependency file, see `depfile`).
    pub keyed_args: Vec<String>,
    /// The dependency file the caller asked for with `-MD`/`-MMD` (cmake's and make's
    /// generated rules do), if any.
    pub depfile: Option<DepFile>,
}

/// A dependency file the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFile {
    /// The `-MF` path, or gcc's default: the `-o` path with its suffix replaced by `.d`.
    pub path: String,
    /// `-MMD` (system headers left out), which cairn turns into `-MD` so that its own key
    /// sees every header; the caller's file then lists system headers too.
    pub user_headers_only: bool,
}

impl Compile {
    /// The arguments without `-c`, the source and `-o`: what preprocessing it here and the
    /// driver's plan for compiling the preprocessed text share (cc/remote.rs). `None` where
    /// the compile is not split so: the caller asked for a dependency file (`-MD`, `-MT`), a
    /// language is forced (`-x`), `-pipe`, macros are kept in the debug information (`-g3`,
    /// `-ggdb3`: the compiler proper records them by header, which preprocessed text no longer
    /// has), or the source is not C or C++ to preprocess (assembler, already preprocessed,
    /// Objective-C).
    pub fn flags(&self) -> Option<Vec<String>> {
        let ext = self.input.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if self.depfile.is_some() || !["c", "cc", "cpp", "cxx", "c++", "C"].contains(&ext) {
            return None;
        }
        let (mut out, mut input_seen) = (Vec::new(), false);
        let mut it = self.keyed_args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-c" => {}
                "-x" | "-pipe" | "-MT" | "-MQ" => return None,
                _ if a.starts_with("-g") && a.ends_with('3') && !a.starts_with("-gdwarf") => return None,
                _ if TAKES_VALUE.contains(&a.as_str()) => {
                    out.push(a.clone());
                    out.push(it.next()?.clone());
                }
                _ if !input_seen && *a == self.input => input_seen = true,
                _ => out.push(a.clone()),
            }
        }
        input_seen.then_some(out)
    }
}

/// What a compiler command line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    Cacheable(Compile),
    /// Passed through, with a short reason for the log.
    NotCacheable(&'static str),
}

/// Flags whose value is the next argument.
const TAKES_VALUE: [&str; 27] = [
    "-I",
    "-D",
    "-U",
    "-include",
    "-imacros",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-isysroot",
    "--sysroot",
    "-x",
    "-L",
    "-l",
    "-Xlinker",
    "-Xassembler",
    "-Xpreprocessor",
    "-Xclang",
    "-target",
    "--target",
    "-arch",
    "--param",
    "-T",
    "-u",
    "-z",
];

/// Source file endings compiled to an object by `-c`.
const SOURCES: [&str; 13] = ["c", "cc", "cpp", "cxx", "c++", "C", "m", "mm", "s", "S", "sx", "i", "ii"];

/// Classifies the arguments (everything after the compiler).
pub fn classify(args: &[OsString]) -> Classified {
    let mut strs = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str() {
            Some(s) => strs.push(s.to_string()),
            None => return Classified::NotCacheable("non-utf8-argument"),
        }
    }
    let (mut compile_only, mut output, mut inputs, mut keyed) = (false, None, Vec::new(), Vec::new());
    let (mut md, mut mmd, mut mf, mut named_target) = (false, false, None, false);
    let mut it = strs.into_iter();
    while let Some(a) = it.next() {
        if let Some(reason) = refused(&a) {
            return Classified::NotCacheable(reason);
        }
        match a.as_str() {
            "-c" => {
                compile_only = true;
                keyed.push(a);
            }
            "-o" => output = it.next(),
            _ if a.starts_with("-o") => output = Some(a[2..].to_string()),
            "-MD" => md = true,
            "-MMD" => mmd = true,
            "-MF" => mf = it.next(),
            "-MT" | "-MQ" => {
                named_target = true;
                keyed.push(a);
                keyed.push(it.next().unwrap_or_default());
            }
            _ if TAKES_VALUE.contains(&a.as_str()) => {
                let v = it.next().unwrap_or_default();
                if let Some(reason) = refused(&v) {
                    return Classified::NotCacheable(reason);
                }
                keyed.push(a);
                keyed.push(v);
            }
            _ if a.starts_with('-') => keyed.push(a),
            _ => {
                let ext = a.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
                if !SOURCES.contains(&ext) {
                    return Classified::NotCacheable("not-a-source");
                }
                inputs.push(a.clone());
                keyed.push(a);
            }
        }
    }
    if !compile_only {
        return Classified::NotCacheable("not-compile-only");
    }
    let Some(output) = output else { return Classified::NotCacheable("no-output") };
    if mf.is_some() && !(md || mmd) {
        return Classified::NotCacheable("dependency-flags");
    }
    let depfile = (md || mmd).then(|| DepFile {
        path: mf.unwrap_or_else(|| match output.rsplit_once('.') {
            Some((stem, ext)) if !ext.contains('/') => format!("{stem}.d"),
            _ => format!("{output}.d"),
        }),
        user_headers_only: mmd && !md,
    });
    if depfile.is_some() {
        // The file's contents: rules for the object, which name it by its `-o` path unless
        // -MT/-MQ say otherwise.
        keyed.push("-MD".into());
        if mmd && !md {
            keyed.push("-MMD".into());
        }
        if !named_target {
            keyed.push(format!("-o={output}"));
        }
    }
    match inputs.len() {
        1 => Classified::Cacheable(Compile { input: inputs.remove(0), output, keyed_args: keyed, depfile }),
        0 => Classified::NotCacheable("no-input"),
        _ => Classified::NotCacheable("multiple-inputs"),
    }
}

/// Arguments that make a compile uncacheable: other outputs than the object, other work than
/// compiling, or an input the key cannot see.
fn refused(a: &str) -> Option<&'static str> {
    match a {
        "-" => Some("stdin"),
        "-E" | "-S" | "-M" | "-MM" | "-fsyntax-only" => Some("not-an-object"),
        "-MG" => Some("dependency-flags"),
        "--coverage" | "-fprofile-arcs" | "-ftest-coverage" | "-gsplit-dwarf" | "-fstack-usage" | "-aux-info" => {
            Some("extra-outputs")
        }
        _ if a.starts_with('@') => Some("argfile"),
        _ if a.starts_with("-Wp,") && a.contains("-M") => Some("dependency-flags"),
        _ if a.starts_with("-save-temps")
            || a.starts_with("-fprofile-generate")
            || a.starts_with("-ftime-trace")
            || a.starts_with("-fdump-") =>
        {
            Some("extra-outputs")
        }
        _ if a.ends_with("=native")
            && (a.starts_with("-march") || a.starts_with("-mcpu") || a.starts_with("-mtune")) =>
        {
            Some("native-cpu")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    const CC_RS: &str = "-O0 -ffunction-sections -fdata-sections -fPIC -gdwarf-4 -fno-omit-frame-pointer -m64 \
        -I /reg/zstd-sys/zstd/lib -I include -Wall -Wextra -DZSTD_MULTITHREAD=1 \
        -o /t/build/zstd-sys-1/out/0f2e-zstd_compress.o -c zstd/lib/compress/zstd_compress.c";

    #[test]
    fn a_compile_splits_into_flags_without_its_source_output_and_dash_c() {
        let Classified::Cacheable(c) = classify(&args(CC_RS)) else { panic!() };
        let flags = c.flags().unwrap();
        assert!(!flags.iter().any(|a| a == "-c" || a.ends_with(".c") || a.ends_with(".o")), "{flags:?}");
        assert_eq!(flags.len(), args(CC_RS).len() - 4, "{flags:?}");
        assert!(flags.windows(2).any(|w| w == ["-I", "include"]));
        for refused in ["-x c", "-pipe", "-MD -MF x.d", "-MMD", "-g3", "-ggdb3"] {
            let line = format!("{refused} -c a.c -o a.o");
            let Classified::Cacheable(c) = classify(&args(&line)) else { panic!("{line}") };
            assert_eq!(c.flags(), None, "{line}");
        }
        let Classified::Cacheable(c) = classify(&args("-c a.S -o a.o")) else { panic!() };
        assert_eq!(c.flags(), None, "assembler");
        let Classified::Cacheable(c) = classify(&args("-gdwarf-3 -c a.c -o a.o")) else { panic!() };
        assert!(c.flags().is_some(), "a DWARF version is not a debug level");
    }

    #[test]
    fn reads_a_cc_rs_object_compile() {
        let Classified::Cacheable(c) = classify(&args(CC_RS)) else { panic!() };
        assert_eq!(c.input, "zstd/lib/compress/zstd_compress.c");
        assert_eq!(c.output, "/t/build/zstd-sys-1/out/0f2e-zstd_compress.o");
        assert!(!c.keyed_args.iter().any(|a| a.contains("/t/build")), "the output path is not keyed");
        assert!(c.keyed_args.contains(&"-DZSTD_MULTITHREAD=1".to_string()));
        let Classified::Cacheable(joined) = classify(&args(&CC_RS.replace("-o /t", "-o/t"))) else { panic!() };
        assert_eq!(joined.output, c.output);
    }

    #[test]
    fn a_callers_dependency_file_is_an_output_of_the_compile() {
        // cmake's Makefile and Ninja generators.
        let cmake =
            "-DX=1 -O2 -MD -MT CMakeFiles/z.dir/a.c.o -MF CMakeFiles/z.dir/a.c.o.d -o CMakeFiles/z.dir/a.c.o -c /s/a.c";
        let Classified::Cacheable(c) = classify(&args(cmake)) else { panic!() };
        let d = c.depfile.unwrap();
        assert_eq!((d.path.as_str(), d.user_headers_only), ("CMakeFiles/z.dir/a.c.o.d", false));
        assert!(c.keyed_args.contains(&"CMakeFiles/z.dir/a.c.o".to_string()), "the named target is keyed");
        assert!(!c.keyed_args.iter().any(|a| a.ends_with(".o.d")), "the -MF path is not");
        // gcc's defaults: `out.d` beside `out.o`, named after the -o path (so that is keyed).
        let Classified::Cacheable(c) = classify(&args("-MMD -o obj/out.o -c a.c")) else { panic!() };
        let d = c.depfile.unwrap();
        assert_eq!((d.path.as_str(), d.user_headers_only), ("obj/out.d", true));
        assert!(c.keyed_args.contains(&"-o=obj/out.o".to_string()));
        let Classified::Cacheable(plain) = classify(&args(CC_RS)) else { panic!() };
        assert_eq!(plain.depfile, None);
    }

    #[test]
    fn everything_else_passes_through_with_a_reason() {
        let cases = [
            (CC_RS.replace(" -c ", " "), "not-compile-only"),
            ("-E detect.c".to_string(), "not-an-object"),
            (format!("{CC_RS} -MF x.d"), "dependency-flags"),
            (format!("{CC_RS} -Wp,-MD,x.d"), "dependency-flags"),
            (format!("{CC_RS} other.c"), "multiple-inputs"),
            (CC_RS.replace("-o /t/build/zstd-sys-1/out/0f2e-zstd_compress.o", ""), "no-output"),
            (format!("{CC_RS} -march=native"), "native-cpu"),
            (format!("{CC_RS} --coverage"), "extra-outputs"),
            (format!("{CC_RS} @args"), "argfile"),
            ("-o prog main.o -lz".to_string(), "not-a-source"),
            ("-Werror -o x.o -c".to_string(), "no-input"),
        ];
        for (cmd, why) in cases {
            assert_eq!(classify(&args(&cmd)), Classified::NotCacheable(why), "{cmd}");
        }
    }
}
