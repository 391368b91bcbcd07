//! The examples run as a user would run them, and say what they should.

use std::process::{Command, Output, Stdio};

/// Runs a command to completion with its output captured, like `Command::output`, but kills
/// it (and fails the test) if it is still running at a deadline: a hung example is a
/// failure with its output, not a hung suite.
trait OutputWithinDeadline {
    fn output_within_deadline(&mut self) -> Output;
}

impl OutputWithinDeadline for Command {
    fn output_within_deadline(&mut self) -> Output {
        // The longest example run here takes a few seconds; this bounds a hang.
        let limit = ipc_testkit::test_timeout() * 6;
        let child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A pidfd, opened before the child can be reaped, can never name another process.
        let process = ipc_signal::Process::open(child.id()).unwrap();
        let watchdog = std::thread::spawn(move || {
            let exited = process.wait_exit_timeout(limit).is_ok();
            if !exited {
                let _ = process.send(ipc_signal::Signal::KILL);
            }
            exited
        });
        let output = child.wait_with_output().unwrap();
        assert!(
            watchdog.join().unwrap(),
            "still running after {limit:?}, killed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

#[test]
fn pipeline_filters_and_counts() {
    let output = Command::new(env!("CARGO_BIN_EXE_pipe_pipeline"))
        .arg("2000")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "consumer: 1000 records\nfirst: RECORD 0: 0\nlast: RECORD 1998: 3992004\n"
    );
}

#[test]
fn fifo_server_hears_every_client() {
    let output = Command::new(env!("CARGO_BIN_EXE_fifo_events"))
        .arg("demo")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for client in ["alpha", "beta", "gamma"] {
        assert!(
            stdout.contains(&format!("server: {client} sent 100 events")),
            "{stdout}"
        );
    }
}

#[test]
fn fifo_client_without_a_server_fails_cleanly() {
    let path = std::env::temp_dir().join(format!("ipcrs-test-nofifo-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_fifo_events"))
        .args(["client", path.to_str().unwrap(), "x", "1"])
        .output_within_deadline();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lstat") && stderr.contains("FifoOptions::timeout"),
        "{stderr}"
    );
}

#[test]
fn uds_echo_serves_every_client_and_cleans_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_uds_echo"))
        .arg("6")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("requests answered").count(), 6, "{stdout}");
    assert!(stdout.contains("served 6 clients"), "{stdout}");
    assert!(stdout.contains("socket file removed: true"), "{stdout}");
}

#[test]
fn fd_passing_shares_one_open_file() {
    let output = Command::new(env!("CARGO_BIN_EXE_fd_passing")).output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(
            "child: got \"here is the report\" with a file that says: written by the parent"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("appended by the child"), "{stdout}");
}

#[test]
fn tcp_echo_round_trips() {
    let output = Command::new(env!("CARGO_BIN_EXE_tcp_echo")).output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("answered 4 messages"), "{stdout}");
}

#[test]
fn shm_table_is_read_by_name_and_through_a_sealed_memfd() {
    let output = Command::new(env!("CARGO_BIN_EXE_shm_table")).output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("consumer: UMBRELLA   104.11 x 4000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("child: HOOLI      105.48 x 5000"),
        "{stdout}"
    );
    assert!(stdout.contains("removed: true"), "{stdout}");
    assert!(stdout.contains("writable here: false"), "{stdout}");
}

#[test]
fn shm_producer_consumer_loses_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_shm_producer_consumer"))
        .arg("100000")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("consumer: 100000 messages, all in order and intact, none lost"),
        "{stdout}"
    );
}

#[test]
fn shm_frames_stream_in_place() {
    let output = Command::new(env!("CARGO_BIN_EXE_shm_frames"))
        .arg("20")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("consumer: 20 frames of 1 MiB, in order, checked in place"),
        "{stdout}"
    );
}

#[test]
fn sem_bounded_buffer_passes_every_item_in_order() {
    let output = Command::new(env!("CARGO_BIN_EXE_sem_bounded_buffer"))
        .arg("20000")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("consumer: 20000 items through 16 slots, all in order and intact"),
        "{stdout}"
    );
}

#[test]
fn sem_crash_recovery_repairs_the_books() {
    let output = Command::new(env!("CARGO_BIN_EXE_sem_crash_recovery")).output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "supervisor: the worker's transfer slot was returned by the kernel",
        "books read A=700 B=0 in flight=300 (sum 700)",
        "supervisor: rolled back; A=1000 B=0 (sum 1000)",
        "supervisor: transfer done; A=700 B=300 (sum 1000)",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
}

#[test]
fn mq_client_server_answers_every_request() {
    let output = Command::new(env!("CARGO_BIN_EXE_mq_client_server"))
        .args(["3", "300"])
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("server: 900 requests from 3 clients answered"),
        "{stdout}"
    );
    for client in 0..3 {
        assert!(
            stdout.contains(&format!("client {client}: 300 requests answered")),
            "{stdout}"
        );
    }
}

#[test]
fn mq_events_lose_nothing_and_alerts_come_first() {
    let output = Command::new(env!("CARGO_BIN_EXE_mq_events"))
        .args(["2", "300"])
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("consumer: 600 events from 2 producers, none lost"),
        "{stdout}"
    );
}

#[test]
fn signal_shutdown_removes_the_servers_objects() {
    let output = Command::new(env!("CARGO_BIN_EXE_signal_shutdown")).output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("server: SIGTERM received after 3 requests"),
        "{stdout}"
    );
    assert!(
        stdout.contains("supervisor: queue removed: true, semaphore removed: true"),
        "{stdout}"
    );
}

#[test]
fn signal_payloads_come_back_doubled() {
    let output = Command::new(env!("CARGO_BIN_EXE_signal_payloads"))
        .arg("20")
        .output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("asker: 20 payloads doubled, none lost, all in order"),
        "{stdout}"
    );
}

#[test]
fn async_server_serves_three_mechanisms_and_shuts_down_cleanly() {
    let output = Command::new(env!("CARGO_BIN_EXE_async_server")).output_within_deadline();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for job in 0..5 {
        for how in ["queue", "channel"] {
            let line = format!("server: handled \"{how} job {job}\" from the {how}");
            assert!(stdout.contains(&line), "{line} in {stdout}");
        }
    }
    assert_eq!(stdout.matches("got \"HELLO\"").count(), 3, "{stdout}");
    assert!(
        stdout.contains("the file I was given says \"report for process"),
        "{stdout}"
    );
    assert!(stdout.contains("server: SIGTERM received"), "{stdout}");
    assert!(
        stdout.contains(
            "supervisor: socket removed: true, queue removed: true, channel removed: true"
        ),
        "{stdout}"
    );
}
