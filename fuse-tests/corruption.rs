//! A flipped or truncated object in the store never reads back as good data.

use std::os::unix::fs::FileExt;

use crate::common::{errno, mount, wait_until};

#[test]
fn a_flipped_byte_in_the_store_reads_as_eio_then_as_a_miss() {
    let Some(m) = mount("a_flipped_byte_in_the_store_reads_as_eio_then_as_a_miss", "64MiB") else {
        return;
    };
    let data = vec![0xA5u8; 256 * 1024];
    let key = m.put(&data);
    assert_eq!(std::fs::read(m.path(&key.to_hex())).unwrap(), data, "good before the flip");
    let f = std::fs::OpenOptions::new().write(true).open(m.store_path(&key)).unwrap();
    f.write_all_at(&[0xA4], 200_000).unwrap();
    drop(f);
    assert_eq!(errno(std::fs::read(m.path(&key.to_hex()))), libc::EIO);
    assert!(!m.store_path(&key).exists(), "removed from the store at once");
    // The kernel's cached entry goes when the daemon's invalidation thread has told it.
    wait_until(10, "the corrupt entry to vanish from the mount", || !m.path(&key.to_hex()).exists());
    assert!(m.log_text().contains("failed its checksum"));
}

#[test]
fn a_truncated_object_reads_as_eio() {
    let Some(m) = mount("a_truncated_object_reads_as_eio", "64MiB") else {
        return;
    };
    let key = m.put(&vec![3u8; 100_000]);
    std::fs::OpenOptions::new().write(true).open(m.store_path(&key)).unwrap().set_len(10).unwrap();
    assert_eq!(errno(std::fs::read(m.path(&key.to_hex()))), libc::EIO);
}
