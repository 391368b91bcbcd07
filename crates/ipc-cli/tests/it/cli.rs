use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Output};

use ipc_core::IpcName;
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, unique_name};
use serde_json::Value;

/// Creates one object of every kind (the FIFO and the socket in the directory arg 0, tagged
/// arg 1), holds them all, reports their names and waits to be killed, leaving them behind.
///
/// With arg 2 `posix-only`, only the segment and the queue (for a peer running as `nobody`,
/// who may not write the test's directory).
pub fn hold(ctx: &mut PeerContext) -> PeerResult {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_open};
    use nix::sys::stat::Mode;
    let dir = Path::new(ctx.arg(0)?).to_path_buf();
    let tag = ctx.arg(1)?.to_owned();
    let posix_only = ctx.arg(2).is_ok_and(|a| a == "posix-only");
    let shm = unique_name(&format!("{tag}-shm"));
    let segment: OwnedFd = nix::sys::mman::shm_open(
        shm.as_cstr(),
        nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(|e| labelled("shm_open", e))?;
    nix::unistd::ftruncate(&segment, 4096).map_err(|e| labelled("ftruncate", e))?;
    let mq = unique_name(&format!("{tag}-mq"));
    let queue = mq_open(
        mq.as_cstr(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR | MQ_OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
        // nix passes no mode and no attributes without them, which O_CREAT needs.
        Some(&MqAttr::new(0, 10, 8192, 0)),
    )
    .map_err(|e| labelled("mq_open", e))?;
    nix::mqueue::mq_send(&queue, b"queued", 0).map_err(|e| labelled("mq_send", e))?;
    if posix_only {
        ctx.ready_with(&format!("{shm} {mq}"))?;
        loop {
            std::thread::park();
        }
    }
    let sem = unique_name(&format!("{tag}-sem"));
    let semaphore = ipc_sem::SemaphoreOptions::new().create(&sem)?;
    let fifo = dir.join(unique_name(&format!("{tag}-fifo")).file_name());
    nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR)?;
    let fifo_end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)?;
    let socket = dir.join(unique_name(&format!("{tag}-sock")).file_name());
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    let undo = unique_name(&format!("{tag}-undo"));
    let set = ipc_sem::SemaphoreOptions::new().create_undo(&undo)?;
    set.post()?;
    let (shmid, msqid) = sysv_segment_and_queue()?;
    let channel = unique_name(&format!("{tag}-chan"));
    let options = ipc_shm::ChannelOptions::new().capacity(64 * 1024);
    let consumer = options.create_consumer(&channel)?;
    let mut producer = options.open_producer(&channel)?;
    // Two records of 8 header bytes and 104 (100 rounded up to 8): 224 bytes queued.
    producer.send(&[7u8; 100])?;
    producer.send(&[8u8; 100])?;
    ctx.ready_with(&format!(
        "{shm} {mq} {sem} {} {} {} {shmid} {msqid} {channel}",
        fifo.display(),
        socket.display(),
        set.id(),
    ))?;
    let _held = (
        segment, queue, semaphore, fifo_end, listener, set, consumer, producer,
    );
    loop {
        std::thread::park();
    }
}

fn labelled(call: &str, errno: nix::errno::Errno) -> std::io::Error {
    std::io::Error::other(format!("{call}: {errno}"))
}

/// A private System V segment, attached, and a private System V queue with one message.
fn sysv_segment_and_queue() -> std::io::Result<(i32, i32)> {
    // Tests of System V objects call libc: nix does not wrap shmget, shmat, msgget, msgsnd.
    #[allow(unsafe_code)]
    // SAFETY: shmget and msgget take no pointers; shmat maps a fresh segment at an address
    // the kernel picks and is never unmapped (the process is killed); msgsnd reads a
    // buffer that lives on this stack for the call, of the length given.
    unsafe {
        let shmid = libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600);
        if shmid < 0 || libc::shmat(shmid, std::ptr::null(), 0) as isize == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let msqid = libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600);
        #[repr(C)]
        struct Message {
            kind: libc::c_long,
            text: [u8; 8],
        }
        let message = Message {
            kind: 1,
            text: *b"message!",
        };
        if msqid < 0 || libc::msgsnd(msqid, (&raw const message).cast(), 8, libc::IPC_NOWAIT) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((shmid, msqid))
    }
}

/// Runs `ipc` with `args`.
pub fn ipc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipc"))
        .args(args)
        .output()
        .expect("run ipc")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `ipc ls --json` with `args`, checked to succeed, as its objects.
fn ls_json(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["ls", "--json"];
    all.extend(args);
    let output = ipc(&all);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["schema"], 1);
    document["objects"].as_array().expect("objects").clone()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not listed in {objects:#?}"))
}

/// The objects one `hold` peer made, in the order it reports them, with their kinds.
fn held(peer: &Peer) -> Vec<(&'static str, String)> {
    let kinds = [
        "shm", "mq", "sem", "fifo", "socket", "sysv-sem", "sysv-shm", "sysv-msg", "channel",
    ];
    kinds
        .into_iter()
        .zip(peer.ready_payload().split_whitespace().map(str::to_owned))
        .collect()
}

/// The segment and queue names a `posix-only` holder reported, watched by `guard`.
fn posix_names(peer: &Peer, guard: &LeakGuard) -> Vec<String> {
    let names: Vec<String> = peer
        .ready_payload()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    for name in &names {
        guard.track(&IpcName::new(name.as_str()).unwrap());
    }
    names
}

/// System V objects have no name a `LeakGuard` could watch: this removes those of a test
/// that failed half-way, with the tool itself, once the peers (declared after it, so
/// dropped first: killed and reaped) are gone.
#[derive(Default)]
struct SysvLeftovers(Vec<(&'static str, String)>);

impl Drop for SysvLeftovers {
    fn drop(&mut self) {
        for (kind, id) in &self.0 {
            // Gone already when the test passed: nothing to report.
            let _ = ipc(&["rm", id, "--kind", kind, "--yes"]);
        }
    }
}

fn exists(kind: &str, name: &str, objects: &[Value]) -> bool {
    objects
        .iter()
        .any(|o| o["kind"] == kind && o["name"] == name)
}

#[test]
fn ls_tells_live_objects_of_every_kind_from_those_a_killed_process_left() {
    let guard = LeakGuard::new();
    let dir = guard.dir().to_str().unwrap().to_owned();
    let search = ["--search", dir.as_str()];
    let mut leftovers = SysvLeftovers::default();
    let mut live = Peer::spawn("hold", &[&dir, "cli-ls"]);
    let mut dead = Peer::spawn("hold", &[&dir, "cli-ls"]);
    let (live_objects, dead_objects) = (held(&live), held(&dead));
    for (kind, name) in live_objects.iter().chain(&dead_objects) {
        if ["shm", "mq", "sem", "channel"].contains(kind) {
            guard.track(&IpcName::new(name.as_str()).unwrap());
        }
        if kind.starts_with("sysv") {
            leftovers.0.push((kind, name.clone()));
        }
    }
    assert_eq!(live_objects.len(), 9, "{}", live.ready_payload());
    let dead_pid = dead.pid();
    dead.kill().unwrap();

    let objects = ls_json(&search);
    for (kind, name) in &live_objects {
        let object = find(&objects, kind, name);
        assert_eq!(object["state"], "live", "{object:#}");
        let holders = object["holders"].as_array().unwrap();
        let named_by_kernel = holders.iter().any(|h| h["pid"] == live.pid());
        let creator = object["creator"] == live.pid() && object["creator_alive"] == true;
        assert!(named_by_kernel || creator, "{object:#}");
    }
    for (kind, name) in &dead_objects {
        let object = find(&objects, kind, name);
        assert_eq!(object["state"], "stale", "{object:#}");
        assert!(
            object["holders"].as_array().unwrap().is_empty(),
            "{object:#}"
        );
        assert!(object["reason"].as_str().unwrap().starts_with("stale"));
        if object["creator"].is_u64() {
            assert_eq!(object["creator"], dead_pid, "{object:#}");
            assert_eq!(object["creator_alive"], false);
        }
    }
    // What is inside: the queued message, the semaphore's value, the set's value.
    let (_, mq) = &live_objects[1];
    let queue = find(&objects, "mq", mq);
    assert_eq!(queue["summary"], "1 of 10 messages (up to 8192 B each)");
    assert_eq!(queue["size"], 6);
    assert_eq!(
        find(&objects, "sem", &live_objects[2].1)["summary"],
        "value 0, 0 waiting"
    );
    assert_eq!(
        find(&objects, "sysv-sem", &live_objects[5].1)["summary"],
        "ipc-sem set, value 1"
    );
    assert_eq!(find(&objects, "shm", &live_objects[0].1)["size"], 4096);
    let pid = live.pid();
    assert_eq!(
        find(&objects, "channel", &live_objects[8].1)["summary"],
        format!("224 B queued of 65536; producer {pid} attached, consumer {pid} attached")
    );
    let dead_channel = find(&objects, "channel", &dead_objects[8].1);
    let summary = dead_channel["summary"].as_str().unwrap();
    assert!(
        summary.ends_with(&format!(
            "producer {dead_pid} dead, consumer {dead_pid} dead"
        )),
        "{summary}"
    );

    // `inspect`: a channel's ring, positions and sides; a set's semaphores; a queue's
    // attributes.
    let details = |kind: &str, name: &str| -> Value {
        let output = ipc(&["inspect", name, "--kind", kind, "--json"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let document: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(document["object"]["name"], name);
        document["details"].clone()
    };
    let channel = details("channel", &live_objects[8].1);
    assert_eq!(channel["ring"], "65536 bytes");
    assert_eq!(channel["queued"], "224 bytes (0% full)");
    assert_eq!(channel["producer position"], "224");
    // The default strategy spins, then sleeps; nobody waits now.
    assert_eq!(
        channel["consumer"],
        format!("pid {pid}, attached, sleeps when it waits")
    );
    let set = details("sysv-sem", &live_objects[5].1);
    assert!(
        set["semaphore 0"]
            .as_str()
            .unwrap()
            .starts_with("value 1, last changed by pid "),
        "{set:#}"
    );
    assert_eq!(
        set["made by"],
        format!("ipc-sem (create_undo), by pid {pid}")
    );
    let queue = details("mq", &live_objects[1].1);
    assert_eq!(queue["messages"], "1 of at most 10");
    let text = stdout(&ipc(&["inspect", &live_objects[8].1]));
    assert!(
        text.contains(&format!("producer:           pid {pid}, attached, ")),
        "{text}"
    );

    // `--stale` and `--kind` filter.
    let stale = ls_json(&["--stale", "--kind", "shm,fifo", "--search", &dir]);
    assert!(exists("shm", &dead_objects[0].1, &stale));
    assert!(exists("fifo", &dead_objects[3].1, &stale));
    assert!(!exists("shm", &live_objects[0].1, &stale));
    assert!(
        stale
            .iter()
            .all(|o| o["kind"] == "shm" || o["kind"] == "fifo")
    );

    // The table: a header, aligned columns, one row per object.
    let table = stdout(&ipc(&[
        "ls",
        "--kind",
        "shm",
        "--prefix",
        "/ipcrs-test-cli-ls",
    ]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KIND  NAME"), "{table}");
    let state_column = lines[0].find("STATE").unwrap();
    for line in &lines[1..] {
        let state = &line[state_column..];
        assert!(
            state.starts_with("live") || state.starts_with("stale"),
            "{table}"
        );
    }
    for name in [&live_objects[0].1, &dead_objects[0].1] {
        let rows = lines
            .iter()
            .filter(|line| line.contains(name.as_str()))
            .count();
        assert_eq!(rows, 1, "{table}");
    }

    // A dry run removes nothing and says why for each object.
    for (kind, name) in live_objects.iter().chain(&dead_objects) {
        let output = ipc(&["rm", name, "--kind", kind]);
        let said = stdout(&output);
        let dead_one = dead_objects.iter().any(|(_, n)| n == name);
        let verb = if dead_one {
            "would remove"
        } else {
            "would keep"
        };
        assert!(
            said.starts_with(&format!("{verb} {kind} {name}: ")),
            "{said}"
        );
        assert_eq!(output.status.success(), dead_one, "{said}");
    }
    let objects = ls_json(&search);
    for (kind, name) in live_objects.iter().chain(&dead_objects) {
        assert!(
            exists(kind, name, &objects),
            "a dry run removed {kind} {name}"
        );
    }

    // A live object of every kind is never removed, even when named with --yes.
    for (kind, name) in &live_objects {
        let output = ipc(&["rm", name, "--kind", kind, "--yes"]);
        let said = stdout(&output);
        assert!(
            said.starts_with(&format!("kept {kind} {name}: in use")),
            "{said}"
        );
        assert!(!output.status.success());
    }
    // What the killed process left is removed.
    for (kind, name) in &dead_objects {
        let output = ipc(&["rm", name, "--kind", kind, "--yes"]);
        let said = stdout(&output);
        assert!(
            said.starts_with(&format!("removed {kind} {name}: stale")),
            "{said}"
        );
        assert!(output.status.success(), "{said}");
    }
    let objects = ls_json(&search);
    for (kind, name) in &live_objects {
        assert!(exists(kind, name, &objects), "{kind} {name} was removed");
    }
    for (kind, name) in &dead_objects {
        assert!(
            !exists(kind, name, &objects),
            "{kind} {name} is still there"
        );
    }
    assert!(!Path::new(&dead_objects[3].1).exists());

    // Once its holder is gone, `clean` finds the rest, and removes it with --yes.
    live.kill().unwrap();
    let clean = |yes: bool| {
        let mut args = vec!["clean", "--prefix", "/ipcrs-test-cli-ls"];
        args.extend(yes.then_some("--yes"));
        stdout(&ipc(&args))
    };
    let said = clean(false);
    assert!(
        said.contains(&format!("would remove shm {}: stale", live_objects[0].1)),
        "{said}"
    );
    assert!(
        said.contains("(a dry run: add --yes to remove them)"),
        "{said}"
    );
    let said = clean(true);
    // The named POSIX objects, by prefix; the rest by name.
    let (named, rest): (Vec<_>, Vec<_>) = live_objects
        .iter()
        .partition(|(_, name)| name.starts_with("/ipcrs-test-cli-ls"));
    assert_eq!(named.len(), 4);
    for (kind, name) in named {
        assert!(
            said.contains(&format!("removed {kind} {name}: stale")),
            "{said}"
        );
    }
    for (kind, name) in rest {
        let output = ipc(&["rm", name, "--kind", kind, "--yes"]);
        assert!(output.status.success(), "{}", stdout(&output));
    }
    let objects = ls_json(&search);
    for (kind, name) in &live_objects {
        assert!(
            !exists(kind, name, &objects),
            "{kind} {name} is still there"
        );
    }
}

#[test]
fn another_users_objects_show_their_owner_and_only_a_dead_holders_are_removed() {
    let guard = LeakGuard::new();
    let dir = guard.dir().to_str().unwrap().to_owned();
    let mut peer = Peer::builder("hold")
        .arg(dir.as_str())
        .arg("cli-user")
        .arg("posix-only")
        .unprivileged()
        .spawn()
        .unwrap();
    let names = posix_names(&peer, &guard);
    let objects = ls_json(&["--user", "nobody", "--kind", "shm,mq"]);
    for (kind, name) in ["shm", "mq"].into_iter().zip(&names) {
        let object = find(&objects, kind, name);
        assert_eq!(object["user"], "nobody", "{object:#}");
        assert_eq!(object["uid"], 65534);
        assert_eq!(object["mode"], 0o600);
        assert_eq!(object["state"], "live");
        assert_eq!(object["holders"][0]["pid"], peer.pid(), "{object:#}");
        assert_eq!(object["holders"][0]["how"], "open");
    }
    assert!(objects.iter().all(|o| o["uid"] == 65534), "{objects:#?}");
    // Root's objects are not another user's.
    assert!(
        ls_json(&["--user", "root", "--kind", "shm"])
            .iter()
            .all(|o| o["uid"] == 0)
    );

    let said = stdout(&ipc(&["rm", &names[0], "--yes"]));
    assert!(said.starts_with("kept shm"), "{said}");
    peer.kill().unwrap();
    for (kind, name) in ["shm", "mq"].into_iter().zip(&names) {
        let output = ipc(&["rm", name, "--kind", kind, "--yes"]);
        assert!(output.status.success(), "{}", stdout(&output));
    }
    assert!(!Path::new("/dev/shm").join(&names[0][1..]).exists());
}

#[test]
fn every_subcommand_has_help_that_changes_nothing() {
    let guard = LeakGuard::new();
    let dir = guard.dir().to_str().unwrap().to_owned();
    let mut peer = Peer::spawn("hold", &[&dir, "cli-help", "posix-only"]);
    let names = posix_names(&peer, &guard);
    peer.kill().unwrap();
    for args in [
        &["--help"][..],
        &["ls", "--help"],
        &["rm", "--help"],
        &["rm", &names[0], "--yes", "--help"],
        &["clean", "--yes", "--help"],
        &["clean", "-h"],
        &["completions", "--help"],
    ] {
        let output = ipc(args);
        assert!(output.status.success(), "{args:?}");
        assert!(stdout(&output).contains("Usage: ipc"), "{args:?}");
    }
    assert!(Path::new("/dev/shm").join(&names[0][1..]).exists());
    let bash = stdout(&ipc(&["completions", "bash"]));
    assert!(
        bash.contains("complete -F") && bash.contains("clean"),
        "{bash}"
    );
    // A usage error is exit code 2, and also changes nothing.
    assert_eq!(ipc(&["rm"]).status.code(), Some(2));
    assert_eq!(ipc(&["ls", "--kind", "nonsense"]).status.code(), Some(2));
    let missing = ipc(&["rm", "/ipcrs-test-cli-help-none", "--yes"]);
    assert_eq!(missing.status.code(), Some(1));
    for (kind, name) in ["shm", "mq"].into_iter().zip(&names) {
        assert!(ipc(&["rm", name, "--kind", kind, "--yes"]).status.success());
    }
}

/// `ipc bench` is the workspace's runner: its peers are the `ipc` binary started again, and
/// it writes the report where asked, showing a progress bar meanwhile.
#[cfg(feature = "bench")]
#[test]
fn bench_measures_with_the_runner_and_writes_the_report() {
    let guard = LeakGuard::new();
    let out = guard.dir().join("report");
    let output = ipc(&[
        "bench",
        "--quick",
        "--only",
        "signal:",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("[#") || stderr.contains("[-"),
        "a progress bar: {stderr}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| signal: send + SignalFd |"), "{report}");
    assert!(stdout(&output).contains("## ipc-rs benchmark"));
    for file in ["report.md", "report.json", "report.svg"] {
        std::fs::remove_file(out.join(file)).unwrap();
    }
    std::fs::remove_dir(&out).unwrap();
}

/// Run by a user who is not root, the tool still lists root's objects, says what it cannot
/// see (other users' holders, queues without a mount) instead of failing, and calls another
/// user's object whose holders it cannot see kept, never stale.
#[test]
fn an_unprivileged_user_sees_what_it_may_and_is_told_what_it_cannot() {
    // `ipc ls --json` of this test's segments, run as nobody.
    let ls_as_nobody = || -> Value {
        use std::os::unix::process::CommandExt;
        let output = Command::new(env!("CARGO_BIN_EXE_ipc"))
            .args([
                "ls",
                "--json",
                "--kind",
                "shm",
                "--prefix",
                "/ipcrs-test-cli-unpriv",
            ])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let guard = LeakGuard::new();
    let dir = guard.dir().to_str().unwrap().to_owned();
    let mut holder = Peer::spawn("hold", &[&dir, "cli-unpriv", "posix-only"]);
    let names = posix_names(&holder, &guard);
    let document = ls_as_nobody();
    let unseen = document["unseen"].to_string();
    assert!(unseen.contains("run as root to see them"), "{unseen}");
    let segment = &document["objects"][0];
    assert_eq!(segment["name"], names[0].as_str());
    assert_eq!(segment["user"], "root");
    // Its holder's descriptors are private, but its creator (named in it) lives.
    assert_eq!(segment["state"], "live", "{segment:#}");
    holder.kill().unwrap();
    let document = ls_as_nobody();
    assert_eq!(document["objects"][0]["state"], "kept", "{document:#}");
    for (kind, name) in ["shm", "mq"].into_iter().zip(&names) {
        assert!(ipc(&["rm", name, "--kind", kind, "--yes"]).status.success());
    }
}
