//! Eviction under a small limit, with one object held open.

use std::io::Read;

use crate::common::{mount, wait_until};

#[test]
fn eviction_keeps_the_limit_and_never_pulls_an_open_object() {
    let Some(m) = mount("eviction_keeps_the_limit_and_never_pulls_an_open_object", "100KiB") else {
        return;
    };
    let first: Vec<u8> = vec![1; 30 * 1024];
    let k1 = m.put(&first);
    let mut held = std::fs::File::open(m.path(&k1.to_hex())).unwrap();
    let mut others = Vec::new();
    for i in 2..=8u8 {
        let k = m.put(&vec![i; 30 * 1024]);
        others.push(k);
        // Look each up so the kernel has its entry cached; eviction must invalidate it.
        assert!(m.path(&k.to_hex()).exists());
    }
    // The held object survived every eviction and reads back whole.
    let mut back = Vec::new();
    held.read_to_end(&mut back).unwrap();
    assert_eq!(back, first);
    assert!(m.path(&k1.to_hex()).exists());
    // Within the limit: 100 KiB holds three objects of 30 KiB.
    let listed = m.ls();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&k1.to_hex()));
    assert!(listed.contains(&others[6].to_hex()) && listed.contains(&others[5].to_hex()));
    // Evicted objects are gone from the store at once. The kernel had their entries cached (each
    // was looked up); the daemon's invalidation thread tells it, asynchronously, because it cannot
    // do so inside the rename that caused the eviction (the kernel holds the directory lock).
    for k in &others[..5] {
        assert!(!m.store_path(k).exists(), "{k} should be evicted from the store");
        wait_until(10, &format!("{k} to vanish from the mount"), || !m.path(&k.to_hex()).exists());
    }
    let log = m.log_text();
    assert_eq!(log.matches("evicted to stay within the size limit").count(), 5, "{log}");
}
