//! A restart keeps the objects and their LRU order.

use crate::common::mount;

#[test]
fn restart_keeps_objects_and_lru_order() {
    let Some(mut m) = mount("restart_keeps_objects_and_lru_order", "100KiB") else {
        return;
    };
    let a = m.put(&vec![1; 30 * 1024]);
    let b = m.put(&vec![2; 30 * 1024]);
    let c = m.put(&vec![3; 30 * 1024]);
    std::fs::read(m.path(&a.to_hex())).unwrap(); // a is now the most recently used; b the least
    m.stop();
    assert!(m.ls().is_empty(), "unmounted");
    m.start();
    let mut expect = vec![a.to_hex(), b.to_hex(), c.to_hex()];
    expect.sort();
    assert_eq!(m.ls(), expect);
    // One more object must evict b, the least recently used before the restart.
    let d = m.put(&vec![4; 30 * 1024]);
    let mut expect = vec![a.to_hex(), c.to_hex(), d.to_hex()];
    expect.sort();
    assert_eq!(m.ls(), expect);
    assert_eq!(std::fs::read(m.path(&a.to_hex())).unwrap(), vec![1; 30 * 1024]);
}
