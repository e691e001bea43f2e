//! `-C target-cpu=native` and `-Z tune-cpu=native`, resolved to the CPU they mean on this
//! machine before they enter a key.
//!
//! The word `native` is the same on every machine, the code it produces is not: through a
//! shared bucket, a machine without AVX-512 could receive a binary built to use it. So the
//! argument enters the key as `target-cpu=native(<cpu>;<features>)`: the CPU name rustc picks
//! for this host and every target feature it enables, as `rustc --print cfg --print
//! target-cpus -C target-cpu=native` reports them. Asking rustc costs a process, so the answer
//! is memoized per toolchain and target in `<cache>/toolchains/native-*.bin`, together with a
//! digest of this CPU's `/proc/cpuinfo` identity (vendor, model, flags): another CPU behind the
//! same home folder (a shared NFS home) asks again.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::memo;

#[derive(Serialize, Deserialize)]
struct Memo {
    cpu_id: [u8; 32],
    resolved: String,
}

/// Rewrites the keyed arguments that name `native` CPUs; `resolve` is called at most once.
pub fn resolve_args(args: &[String], resolve: impl FnOnce() -> io::Result<String>) -> io::Result<Vec<String>> {
    let is_native = |a: &str| a == "-C=target-cpu=native" || a == "-Z=tune-cpu=native";
    if !args.iter().any(|a| is_native(a)) {
        return Ok(args.to_vec());
    }
    let resolved = resolve()?;
    Ok(args.iter().map(|a| if is_native(a) { format!("{a}({resolved})") } else { a.clone() }).collect())
}

/// The CPU `native` means here, for `rustc` (identified by `toolchain`) and `target`.
pub fn resolve(rustc: &Path, target: Option<&str>, toolchain: &[u8; 32], memo_dir: &Path) -> io::Result<String> {
    let cpu_id = cpu_identity();
    let name = blake3::hash(&[&toolchain[..], target.unwrap_or("").as_bytes()].concat()).to_hex();
    let memo_path = memo_dir.join(format!("native-{}.bin", &name[..32]));
    if let Some(m) = memo::load::<Memo>(&memo_path) {
        if m.cpu_id == cpu_id {
            return Ok(m.resolved);
        }
    }
    let mut cmd = Command::new(rustc);
    cmd.args(["--print", "cfg", "--print", "target-cpus", "-C", "target-cpu=native"]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other("rustc cannot say what target-cpu=native is"));
    }
    let resolved = parse(&String::from_utf8_lossy(&out.stdout));
    memo::save(&memo_path, &Memo { cpu_id, resolved: resolved.clone() });
    Ok(resolved)
}

/// `<cpu>;<feature>,<feature>…` from rustc's `--print cfg` and `--print target-cpus`.
fn parse(printed: &str) -> String {
    let cpu = printed
        .lines()
        .find(|l| l.trim_start().starts_with("native"))
        .and_then(|l| l.split("(currently ").nth(1))
        .map(|rest| rest.trim_end_matches([')', '.', ' ']))
        .unwrap_or("unknown");
    let mut features: Vec<&str> =
        printed.lines().filter_map(|l| l.strip_prefix("target_feature=\"").and_then(|f| f.strip_suffix('"'))).collect();
    features.sort_unstable();
    format!("{cpu};{}", features.join(","))
}

/// A digest of what identifies this CPU in `/proc/cpuinfo` (first processor's vendor, family,
/// model and flags); all zeros where there is no such file.
fn cpu_identity() -> [u8; 32] {
    let text = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let first = text.split("\n\n").next().unwrap_or("");
    let mut h = blake3::Hasher::new();
    for line in first.lines() {
        let key = line.split(':').next().unwrap_or("").trim();
        if ["vendor_id", "cpu family", "model", "model name", "flags", "Features", "CPU part"].contains(&key) {
            h.update(line.as_bytes());
            h.update(b"\n");
        }
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_is_replaced_by_what_it_means_and_nothing_else_is_touched() {
        let args = vec!["-C=opt-level=3".to_string(), "-C=target-cpu=native".to_string()];
        let a = resolve_args(&args, || Ok("skylake;avx2,sse2".into())).unwrap();
        assert_eq!(a, ["-C=opt-level=3", "-C=target-cpu=native(skylake;avx2,sse2)"]);
        let b = resolve_args(&args, || Ok("skylake-avx512;avx2,avx512f,sse2".into())).unwrap();
        assert_ne!(a, b, "another CPU, another key");
        let plain = vec!["-C=target-cpu=x86-64-v3".to_string()];
        assert_eq!(resolve_args(&plain, || panic!("not asked")).unwrap(), plain);
    }

    #[test]
    fn rustc_output_is_read_into_cpu_and_sorted_features() {
        let printed = "target_arch=\"x86_64\"\ntarget_feature=\"sse2\"\ntarget_feature=\"avx2\"\n\
                       Available CPUs for this target:\n    native      - Select the CPU of the current host (currently znver3).\n    x86-64\n";
        assert_eq!(parse(printed), "znver3;avx2,sse2");
    }

    #[test]
    fn this_machine_resolves_to_real_features() {
        let dir = tempfile::tempdir().unwrap();
        let r = resolve(Path::new("rustc"), None, &[7; 32], dir.path()).unwrap();
        assert!(!r.starts_with("unknown;") && r.contains(','), "{r}");
        assert_eq!(resolve(Path::new("rustc"), None, &[7; 32], dir.path()).unwrap(), r, "memoized, stable");
    }
}
