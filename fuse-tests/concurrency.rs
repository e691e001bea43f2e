//! 64 concurrent processes writing and reading the same and different keys.

use std::process::{Command, Stdio};

use crate::common::mount;
use cairn::key::Key;

#[test]
fn sixty_four_processes_share_keys_without_corruption() {
    let Some(m) = mount("sixty_four_processes_share_keys_without_corruption", "256MiB") else {
        return;
    };
    let shared = vec![7u8; 100_000];
    let shared_key = Key::of_bytes(&shared);
    let src = m.store.parent().unwrap().join("inputs");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("shared"), &shared).unwrap();
    let mut expected = vec![(shared_key, shared.clone())];
    let mut children = Vec::new();
    for i in 0..64 {
        // Even: everyone writes the same object. Odd: each its own. All read back what they wrote.
        let (key, file) = if i % 2 == 0 {
            (shared_key, src.join("shared"))
        } else {
            let data = format!("object number {i}\n").repeat(1000).into_bytes();
            let key = Key::of_bytes(&data);
            let f = src.join(format!("own{i}"));
            std::fs::write(&f, &data).unwrap();
            expected.push((key, data));
            (key, f)
        };
        let script = format!(
            "set -e; cp {f} {m}/.tmp.p{i}; mv {m}/.tmp.p{i} {m}/{key}; cmp {f} {m}/{key}",
            f = file.display(),
            m = m.mnt.display()
        );
        children.push(Command::new("sh").arg("-c").arg(script).stderr(Stdio::piped()).spawn().unwrap());
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for (key, data) in &expected {
        assert_eq!(&std::fs::read(m.path(&key.to_hex())).unwrap(), data);
    }
    assert_eq!(m.ls().len(), expected.len());
}

#[test]
fn racing_writers_of_different_bytes_leave_exactly_one_intact() {
    let Some(m) = mount("racing_writers_of_different_bytes_leave_exactly_one_intact", "64MiB") else {
        return;
    };
    let key = Key([0x5a; 32]);
    let src = m.store.parent().unwrap().join("racers");
    std::fs::create_dir_all(&src).unwrap();
    let mut children = Vec::new();
    for i in 0..16 {
        let f = src.join(format!("r{i}"));
        std::fs::write(&f, vec![i as u8; 50_000]).unwrap();
        let script = format!("cp {} {m}/.tmp.r{i} && mv {m}/.tmp.r{i} {m}/{key}", f.display(), m = m.mnt.display());
        children.push(Command::new("sh").arg("-c").arg(script).stderr(Stdio::piped()).spawn().unwrap());
    }
    let mut won = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            won += 1;
        } else {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("File exists"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(won, 1);
    let bytes = std::fs::read(m.path(&key.to_hex())).unwrap();
    assert_eq!(bytes.len(), 50_000);
    assert!(bytes.iter().all(|b| *b == bytes[0]), "the object is one writer's bytes, unmixed");
}
