//! Commit protocol through a real mount: temp name, write, rename.

use std::io::Write;

use crate::common::{mount, mount_with, sh};
use cairn::key::Key;

#[test]
fn temp_then_rename_commits_atomically() {
    let Some(m) = mount("temp_then_rename_commits_atomically", "64MiB") else {
        return;
    };
    let data = b"compiled bytes".repeat(1000);
    let key = Key::of_bytes(&data);
    let tmp = m.path(".tmp.writer");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(&data[..100]).unwrap();
    // Mid-write: nothing is listed, the key does not exist.
    assert!(m.ls().is_empty());
    assert!(!m.path(&key.to_hex()).exists());
    f.write_all(&data[100..]).unwrap();
    drop(f);
    std::fs::rename(&tmp, m.path(&key.to_hex())).unwrap();
    assert_eq!(m.ls(), vec![key.to_hex()]);
    assert_eq!(std::fs::read(m.path(&key.to_hex())).unwrap(), data);
    assert!(!tmp.exists());
}

#[test]
fn cp_and_mv_work_as_a_user_would_use_them() {
    let Some(m) = mount("cp_and_mv_work_as_a_user_would_use_them", "64MiB") else {
        return;
    };
    let src = m.store.parent().unwrap().join("src.bin");
    std::fs::write(&src, vec![42u8; 300_000]).unwrap();
    let key = Key::of_bytes(&std::fs::read(&src).unwrap());
    let (ok, _, err) = sh(&format!(
        "cp {} {}/.tmp.cp && mv {}/.tmp.cp {}/{}",
        src.display(),
        m.mnt.display(),
        m.mnt.display(),
        m.mnt.display(),
        key
    ));
    assert!(ok, "{err}");
    let (ok, out, _) = sh(&format!("cmp {} {}/{} && echo same", src.display(), m.mnt.display(), key));
    assert!(ok && out.contains("same"));
}

#[test]
fn reads_without_passthrough_return_the_same_bytes() {
    let Some(m) = mount_with("reads_without_passthrough_return_the_same_bytes", "64MiB", &["--no-passthrough"]) else {
        return;
    };
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let key = m.put(&data);
    assert_eq!(std::fs::read(m.path(&key.to_hex())).unwrap(), data);
    assert!(m.log_text().contains("passthrough=false"));
}
