//! The build script's environment: which variables enter a run's key, which C and C++
//! compiler cc-rs would pick, and the variables that route those compilers through
//! `cairn-cc` on a miss.
//!
//! Pure: takes the environment as a list, returns lists.

/// Variables cargo sets for a build script (or that its tools read) that enter the key by
/// value. Paths among them are made checkout-relative by the caller (`CAIRN_BASEDIR`).
const EXACT: [&str; 20] = [
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "RUSTC_LINKER",
    "RUSTC_BOOTSTRAP",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_MANIFEST_LINKS",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "OUT_DIR",
    "SOURCE_DATE_EPOCH",
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "LIBRARY_PATH",
    "SDKROOT",
    "MACOSX_DEPLOYMENT_TARGET",
    "CRATE_CC_NO_DEFAULTS",
];

/// Prefixes of variables that enter the key: cargo's crate description, cfgs and features,
/// `links` metadata of dependencies, and cmake's and pkg-config's settings.
const PREFIXES: [&str; 6] = ["CARGO_PKG_", "CARGO_CFG_", "CARGO_FEATURE_", "DEP_", "CMAKE", "PKG_CONFIG"];

/// The C tools cc-rs reads, each also as `<NAME>_<target>`, `HOST_<NAME>` and `TARGET_<NAME>`.
const C_TOOLS: [&str; 11] =
    ["CC", "CXX", "AR", "RANLIB", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "ARFLAGS", "ASM", "ASMFLAGS"];

/// Whether a variable enters a build-script run's base key.
///
/// Left out on purpose: `NUM_JOBS`, `CARGO_MAKEFLAGS`/`MAKEFLAGS` (parallelism and the
/// jobserver's descriptors, which change every build), `RUSTC` and `RUSTDOC` (paths that differ
/// per home; the toolchain enters by identity instead), `CARGO` and `CARGO_HOME`, `PATH`
/// (the compilers it finds enter by identity), `RUSTC_WRAPPER` and cairn's own `CAIRN_*`.
/// A variable the script reads and declares with `rerun-if-env-changed` enters the result
/// key by value.
pub fn is_keyed(name: &str) -> bool {
    if EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)) {
        return true;
    }
    let bare = name.strip_prefix("HOST_").or_else(|| name.strip_prefix("TARGET_")).unwrap_or(name);
    C_TOOLS.iter().any(|t| bare == *t || (bare.starts_with(t) && bare[t.len()..].starts_with('_')))
}

/// A C or C++ compiler as cc-rs chooses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiler {
    /// The variable cc-rs reads it from (`CC`, `CC_x86_64-unknown-linux-gnu`, `HOST_CXX` …).
    pub var: String,
    /// Its value: the command line cc-rs would run (`cc`, `ccache gcc`, `clang -m32` …).
    pub command: String,
}

/// The compiler cc-rs would run for `tool` (`CC` or `CXX`): the first set of `<tool>_<target>`,
/// `<tool>_<target with underscores>`, `HOST_<tool>` or `TARGET_<tool>` (host builds read
/// `HOST_`), `<tool>`; else the default `cc` / `c++`.
pub fn compiler(env: &[(String, String)], tool: &str, target: &str, host: &str) -> Compiler {
    let get = |k: &str| env.iter().find(|(n, v)| n == k && !v.trim().is_empty()).map(|(_, v)| v.clone());
    let kind = if target == host { "HOST" } else { "TARGET" };
    let candidates = [
        format!("{tool}_{target}"),
        format!("{tool}_{}", target.replace('-', "_")),
        format!("{kind}_{tool}"),
        tool.into(),
    ];
    for var in candidates {
        if let Some(command) = get(&var) {
            return Compiler { var, command };
        }
    }
    let default = if tool == "CXX" { "c++" } else { "cc" };
    Compiler { var: tool.to_string(), command: default.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn cargo_and_c_tool_variables_are_keyed_and_build_noise_is_not() {
        for v in [
            "TARGET",
            "OUT_DIR",
            "CARGO_FEATURE_BUNDLED",
            "CARGO_CFG_TARGET_OS",
            "DEP_Z_INCLUDE",
            "CC",
            "CC_x86_64-unknown-linux-gnu",
            "CFLAGS_x86_64_unknown_linux_gnu",
            "HOST_CC",
            "TARGET_CXXFLAGS",
            "CMAKE_GENERATOR",
            "PKG_CONFIG_PATH",
            "CARGO_ENCODED_RUSTFLAGS",
        ] {
            assert!(is_keyed(v), "{v}");
        }
        for v in ["NUM_JOBS", "CARGO_MAKEFLAGS", "MAKEFLAGS", "PATH", "HOME", "RUSTC", "RUSTC_WRAPPER", "CCACHE_DIR"] {
            assert!(!is_keyed(v), "{v}");
        }
    }

    #[test]
    fn the_compiler_is_chosen_as_cc_rs_does() {
        let t = "x86_64-unknown-linux-gnu";
        assert_eq!(compiler(&env(&[]), "CC", t, t).command, "cc");
        assert_eq!(compiler(&env(&[]), "CXX", t, t).command, "c++");
        let e = env(&[("CC", "gcc-12"), ("HOST_CC", "clang")]);
        assert_eq!(compiler(&e, "CC", t, t), Compiler { var: "HOST_CC".into(), command: "clang".into() });
        let e = env(&[("CC", "gcc-12"), ("CC_x86_64_unknown_linux_gnu", "tcc")]);
        assert_eq!(compiler(&e, "CC", t, t).var, "CC_x86_64_unknown_linux_gnu");
        let e = env(&[("CC", "gcc-12"), ("TARGET_CC", "clang")]);
        assert_eq!(compiler(&e, "CC", "aarch64-unknown-linux-gnu", t).command, "clang");
    }
}
