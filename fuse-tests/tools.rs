//! Ordinary tools are the admin interface: ls, du, df, stat and rm.

use crate::common::{mount, sh};

#[test]
fn ls_du_df_stat_and_rm_work_through_the_real_commands() {
    let Some(m) = mount("ls_du_df_stat_and_rm_work_through_the_real_commands", "64MiB") else {
        return;
    };
    let a = m.put(&vec![1u8; 1 << 20]);
    let b = m.put(&vec![2u8; 3 << 20]);
    let mnt = m.mnt.display();

    let (ok, out, _) = sh(&format!("ls -l {mnt}"));
    assert!(ok);
    assert!(out.contains("1048576 ") && out.contains(&a.to_hex()), "{out}");
    assert!(out.contains("3145728 ") && out.contains(&b.to_hex()), "{out}");
    assert!(out.contains("-r--r--r--"), "{out}");

    let (ok, out, _) = sh(&format!("du -sk {mnt}"));
    assert!(ok);
    let kib: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(kib, 4096, "du adds up the objects: {out}");

    let (ok, out, _) = sh(&format!("df -k --output=size,used {mnt} | tail -1"));
    assert!(ok);
    let nums: Vec<u64> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(nums, vec![65536, 4096], "df: size is the limit, used is the stored bytes");

    let (ok, out, _) = sh(&format!("stat -c '%s %h %F' {mnt}/{a}"));
    assert!(ok);
    assert_eq!(out.trim(), "1048576 1 regular file");

    let (ok, _, err) = sh(&format!("rm {mnt}/{a}"));
    assert!(ok, "{err}");
    assert_eq!(m.ls(), vec![b.to_hex()]);
    let (ok, _, err) = sh(&format!("rm {mnt}/{a}"));
    assert!(!ok && err.contains("No such file or directory"), "{err}");
    assert!(!m.store_path(&a).exists(), "the bytes are gone from the store too");
}

#[test]
fn ls_shows_the_last_use_time() {
    let Some(m) = mount("ls_shows_the_last_use_time", "64MiB") else {
        return;
    };
    let k = m.put(b"timed");
    let before = std::fs::metadata(m.path(&k.to_hex())).unwrap().modified().unwrap();
    // Wait until the clock has visibly moved on, then use the object.
    let start = std::time::SystemTime::now();
    while std::time::SystemTime::now().duration_since(start).unwrap() < std::time::Duration::from_millis(20) {
        std::hint::spin_loop();
    }
    std::fs::read(m.path(&k.to_hex())).unwrap();
    // The kernel caches attributes for up to a second: wait (bounded) until `ls -l` shows the
    // new time, which it must, rather than sleeping past the cache.
    let path = m.path(&k.to_hex());
    crate::common::wait_until(5, "ls -l to show the new last-use time", || {
        std::fs::metadata(&path).unwrap().modified().unwrap() > before
    });
    // And `ls -l` itself prints it.
    let (ok, out, _) = sh(&format!("ls -l --time-style=+%s.%N {}", path.display()));
    assert!(ok, "{out}");
    let shown: f64 = out.split_whitespace().rev().nth(1).and_then(|t| t.parse().ok()).expect("a time in ls -l");
    let before = before.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(shown > before, "ls -l shows {shown}, the object was committed at {before}");
}
