use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use ipc_pipe::{ChildFds, duplex, pipe};
use ipc_testkit::LeakGuard;

/// The pipe inode behind a descriptor, as `/proc` shows it: `pipe:[1234]`.
fn pipe_id(fd: &impl std::os::fd::AsFd) -> String {
    let file = std::fs::File::from(fd.as_fd().try_clone_to_owned().unwrap());
    format!("pipe:[{}]", file.metadata().unwrap().ino())
}

#[test]
fn child_gets_exactly_the_descriptors_it_was_given() {
    let _guard = LeakGuard::new();
    let (r5, w5) = pipe().unwrap();
    let (r7, w7) = pipe().unwrap();
    let (id5, id7) = (pipe_id(&w5), pipe_id(&r7));
    // Other descriptors open in this process must not reach the child.
    let (_unrelated_r, _unrelated_w) = pipe().unwrap();
    let mut cmd = Command::new("ls");
    cmd.args(["-l", "/proc/self/fd"]).stdout(Stdio::piped());
    ChildFds::new()
        .insert(w5, 5)
        .unwrap()
        .insert(r7, 7)
        .unwrap()
        .apply(&mut cmd);
    let output = cmd.output().unwrap();
    drop(cmd);
    assert!(output.status.success());
    let listing = String::from_utf8(output.stdout).unwrap();
    let mut fds: Vec<(String, String)> = listing
        .lines()
        .filter_map(|line| {
            let (left, target) = line.split_once(" -> ")?;
            Some((left.rsplit(' ').next()?.to_owned(), target.to_owned()))
        })
        .collect();
    fds.sort();
    // Descriptors this test process itself inherited without close-on-exec (cargo's
    // jobserver, say) reach every child; they are not ours to judge.
    let inherited: Vec<String> = ipc_testkit::inherited_fds()
        .iter()
        .map(ToString::to_string)
        .collect();
    let extra: Vec<_> = fds
        .iter()
        .filter(|(fd, target)| {
            !["0", "1", "2"].contains(&fd.as_str())
                && !target.starts_with("/proc/")
                && !inherited.contains(fd)
        })
        .collect();
    assert_eq!(
        extra,
        [&("5".to_owned(), id5), &("7".to_owned(), id7)],
        "the child's descriptors:\n{listing}"
    );
    // The parent's copies closed with the command: end of file once the child is done.
    let mut rest = Vec::new();
    (&r5).read_to_end(&mut rest).unwrap();
    drop((r5, w7));
}

#[test]
fn child_writes_through_a_mapped_descriptor() {
    let _guard = LeakGuard::new();
    let (mut reader, writer) = pipe().unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo hello from fd 9 >&9"]);
    ChildFds::new().insert(writer, 9).unwrap().apply(&mut cmd);
    let status = cmd.status().unwrap();
    drop(cmd);
    assert!(status.success());
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello from fd 9\n");
}

#[test]
fn swapped_targets_do_not_clobber_each_other() {
    // Map a descriptor to the number another one has in this process, and the other way
    // round: the child must still get the right pipe at each number.
    let _guard = LeakGuard::new();
    let (r_a, w_a) = pipe().unwrap();
    let (r_b, w_b) = pipe().unwrap();
    use std::os::fd::AsRawFd;
    let (num_a, num_b) = (w_a.as_raw_fd(), w_b.as_raw_fd());
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("echo A >&{num_b}; echo B >&{num_a}")]);
    ChildFds::new()
        .insert(w_a, num_b)
        .unwrap()
        .insert(w_b, num_a)
        .unwrap()
        .apply(&mut cmd);
    assert!(cmd.status().unwrap().success());
    drop(cmd);
    let mut a = String::new();
    let mut b = String::new();
    (&r_a).read_to_string(&mut a).unwrap();
    (&r_b).read_to_string(&mut b).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("A\n", "B\n"));
}

#[test]
fn stdio_numbers_are_refused() {
    let (_r, w) = pipe().unwrap();
    let err = ChildFds::new().insert(w, 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn request_reply_with_a_child_over_a_duplex_pair() {
    let _guard = LeakGuard::new();
    let (parent, child_end) = duplex().unwrap();
    let (child_in, child_out) = child_end.into_parts();
    let mut child = Command::new("sh")
        .args(["-c", "while read line; do echo \"re: $line\"; done"])
        .stdin(Stdio::from(child_in))
        .stdout(Stdio::from(child_out))
        .spawn()
        .unwrap();
    let (reader, mut writer) = parent.into_parts();
    let mut replies = BufReader::new(reader);
    for i in 0..50 {
        writeln!(writer, "request {i}").unwrap();
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert_eq!(line, format!("re: request {i}\n"));
    }
    drop(writer);
    assert!(child.wait().unwrap().success());
}
