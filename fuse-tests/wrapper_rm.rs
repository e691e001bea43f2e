//! `rm <mnt>/<key>` of one crate's result, found by crate name in the log: only that crate
//! recompiles. Where there is no mount, `cairn rm <key>` does the same through the socket.

use crate::common::Via;
use crate::workspace::{cacheable, cargo, ensure_warm, lock, log_path, mount_via, ok, read_log};

#[test]
fn rm_of_one_entry_recompiles_only_that_crate() {
    rm_one("rm_of_one_entry_recompiles_only_that_crate", Via::Mount);
}

#[test]
fn without_fuse_cairn_rm_of_one_entry_recompiles_only_that_crate() {
    rm_one("without_fuse_cairn_rm_of_one_entry_recompiles_only_that_crate", Via::Socket);
}

fn rm_one(test: &str, via: Via) {
    let _g = lock();
    let Some(m) = mount_via(test, via) else {
        return;
    };
    ensure_warm(&m);
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let before = log_path("rm-before");
    ok(cargo(Some(&m), "t-main", &before, &["build"]));
    let lines = read_log(&before);
    let itoa = lines.iter().find(|l| l.krate == "itoa" && l.outcome == "hit").expect("itoa hit").clone();
    match via {
        Via::Mount => {
            let (okk, _, err) = crate::common::sh(&format!("rm {}/{}", m.mnt.display(), itoa.key));
            assert!(okk, "{err}");
        }
        Via::Socket => {
            let out = m.cairn(&["rm", &itoa.key]);
            assert!(out.contains(&itoa.key) && out.contains("itoa"), "{out}");
        }
    }
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let after = log_path("rm-after");
    ok(cargo(Some(&m), "t-main", &after, &["build"]));
    let lines = read_log(&after);
    let c = cacheable(&lines);
    let missed: Vec<_> = c.iter().filter(|l| l.outcome != "hit").map(|l| l.krate.as_str()).collect();
    assert_eq!(missed, vec!["itoa"], "{lines:?}");
    let again = c.iter().find(|l| l.krate == "itoa").unwrap();
    assert_eq!(again.key, itoa.key, "the same inputs give the same key, stored anew");
}
