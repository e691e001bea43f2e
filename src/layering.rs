//! The layers of the pure modules, checked: front ends import the engine and `protocol`, never
//! one another; the engine imports no front end; `protocol` imports nothing of cairn's but the
//! key. Read from the source text (code lines, not comments), so a new import that breaks a
//! layer fails here with its file and line.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `crate::<module>` a folder's (or file's) code lines name, with where.
fn imports(path: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect()
    } else {
        vec![path.to_path_buf()]
    };
    for f in files {
        if f.is_dir() {
            out.extend(imports(&f));
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for part in code.split("crate::").skip(1) {
                let module: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push((module, format!("{}:{}", f.display(), n + 1)));
            }
        }
    }
    out
}

#[test]
fn front_ends_import_only_the_engine_and_protocol_and_the_engine_no_front_end() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let pure: BTreeSet<&str> = ["key", "size"].into();
    let rules: [(&str, &[&str]); 5] = [
        ("rustc", &["engine", "protocol"]),
        ("build_script", &["engine", "protocol"]),
        ("cc", &["engine", "protocol"]),
        ("engine", &["protocol"]),
        ("protocol", &[]),
    ];
    let mut broken = Vec::new();
    for (module, allowed) in rules {
        for (m, at) in imports(&src.join(module)) {
            if m != module && !pure.contains(m.as_str()) && !allowed.contains(&m.as_str()) {
                broken.push(format!("{module} imports {m} at {at}"));
            }
        }
    }
    assert!(broken.is_empty(), "layers broken:\n{}", broken.join("\n"));
}
