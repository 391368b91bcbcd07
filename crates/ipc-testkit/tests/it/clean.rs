use std::fs::File;

use ipc_testkit::{LeakGuard, Peer, clean_stale};

#[test]
fn clean_removes_only_dead_creators_unused_objects() {
    let guard = LeakGuard::new();
    let mut peer = Peer::spawn("idle", &[]);
    let dead = peer.pid();
    peer.kill().unwrap();
    let alive = std::process::id();
    let dir = guard.dir();
    let files = [
        format!("ipcrs-test-x-{dead}-0000abcd-1"), // stale: removed
        format!("sem.ipcrs-test-y-{dead}-0000abcd-2"), // stale semaphore: removed
        format!("ipcrs-test-z-{alive}-0000abcd-3"), // creator alive: kept
        format!("ipcrs-test-u-{dead}-0000abcd-4"), // in use by us: kept
        format!("other-{dead}-0000abcd-5"),        // not ours: untouched
        "ipcrs-test-no-pid".to_owned(),            // not a unique name: untouched
    ];
    for file in &files {
        File::create(dir.join(file)).unwrap();
    }
    let in_use = File::open(dir.join(&files[3])).unwrap();

    let dry = clean_stale(&[dir], true).unwrap();
    assert_eq!(dry.removed.len(), 2, "{dry:?}");
    assert!(
        files.iter().all(|f| dir.join(f).exists()),
        "a dry run removes nothing"
    );

    let report = clean_stale(&[dir], false).unwrap();
    let mut removed: Vec<_> = report
        .removed
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    removed.sort();
    assert_eq!(removed, vec![files[0].clone(), files[1].clone()]);
    let mut kept: Vec<_> = report
        .kept
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, vec![files[3].clone(), files[2].clone()]);
    assert!(report.failed.is_empty());
    for file in &files[2..] {
        assert!(dir.join(file).exists(), "{file}");
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    drop(in_use);
}
