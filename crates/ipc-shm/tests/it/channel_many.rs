//! Many channels in one process: each end holds one descriptor of its own (its segment),
//! and the peer process is watched through one pidfd shared by all of them, so a thousand
//! channels fit under the default descriptor limit of 1 024; an end in a poller adds its
//! wake FIFO and nothing else of its own.

use std::collections::HashSet;
use std::time::Duration;

use ipc_core::IpcName;
use ipc_shm::{ChannelOptions, Consumer, Interest, Selector, WaitStrategy};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_deadline, test_timeout};

/// How many channels each process holds an end of.
const CHANNELS: usize = 1000;
/// How many channels a process watches in a selector: three descriptors each (segment,
/// wake FIFO, the selector's duplicate of it) fit under the default limit, five would not.
const POLLED: usize = 300;
/// The default soft limit on open descriptors.
const DEFAULT_NOFILE: u64 = 1024;

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(4096)
        .max_message_size(64)
        .wait_strategy(WaitStrategy::Blocking)
        .timeout(test_timeout())
}

/// The names of the channels `prefix-0` … of a test: arg 0 of a peer, and arg 1 if it has
/// one says how many (else [`CHANNELS`]).
fn names(ctx: &PeerContext) -> Result<Vec<IpcName>, Box<dyn std::error::Error + Send + Sync>> {
    let prefix = ctx.arg(0)?;
    let count = ctx.arg(1).map_or(Ok(CHANNELS), str::parse)?;
    Ok((0..count)
        .map(|i| IpcName::new(format!("{prefix}-{i}")))
        .collect::<Result<_, _>>()?)
}

/// Sets this process's soft descriptor limit to the peer's arg 2, or to the default one
/// (the hard limit is raised if it is lower: the tests run as root).
fn descriptor_limit(ctx: &PeerContext) -> PeerResult {
    let soft = ctx.arg(2).map_or(Ok(DEFAULT_NOFILE), str::parse)?;
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        soft,
        hard.max(soft),
    )?;
    Ok(())
}

fn open_descriptors() -> Result<usize, std::io::Error> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// Under the peer's descriptor limit, creates the consumers of its channels,
/// reports ready and returns them once told "go".
fn consumers_on_go(
    ctx: &mut PeerContext,
) -> Result<Vec<Consumer>, Box<dyn std::error::Error + Send + Sync>> {
    descriptor_limit(ctx)?;
    let consumers = names(ctx)?
        .iter()
        .map(|name| options().create_consumer(name))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.ready()?;
    assert_eq!(ctx.recv()?, "go");
    Ok(consumers)
}

/// Under the peer's descriptor limit, creates the consumers of channels arg 0-0 … and
/// reports ready; on "go", receives one message on each and finds its producer alive
/// (reporting the descriptors it then has open), then on "gone" waits on each until its producer is reported gone.
pub fn many_consumers_role(ctx: &mut PeerContext) -> PeerResult {
    let mut consumers = consumers_on_go(ctx)?;
    let mut buf = [0u8; 64];
    for (i, consumer) in consumers.iter_mut().enumerate() {
        let n = consumer.recv_timeout(&mut buf, test_timeout())?;
        assert_eq!(&buf[..n], i.to_string().as_bytes());
    }
    // A wait looks at the peer: alive on every channel, through the one pidfd (a pidfd
    // each would run out of descriptors, which must not pass for a death either).
    for consumer in &mut consumers {
        let err = consumer
            .recv_timeout(&mut buf, Duration::from_micros(100))
            .expect_err("nothing more was sent");
        assert!(err.is_timeout(), "{err}");
    }
    ctx.send(&open_descriptors()?.to_string())?;
    assert_eq!(ctx.recv()?, "gone");
    for consumer in &mut consumers {
        let err = consumer
            .recv_timeout(&mut buf, test_timeout())
            .expect_err("the producer was killed");
        assert!(err.is_peer_gone(), "{err}");
    }
    ctx.send("all saw it")?;
    Ok(())
}

/// Under the peer's descriptor limit, creates the consumers of channels arg 0-0 … (arg 1
/// of them) and reports ready; on "go" (each has a message), empties each, adds them all to
/// a selector and waits once, which arms every one (its wake FIFO, its timer, the watch of
/// the producer's process), and reports how many descriptors that added and how many of
/// them are the relay thread's; on "gone", waits until the selector has reported every
/// channel ready and finds each producer gone.
pub fn polled_consumers_role(ctx: &mut PeerContext) -> PeerResult {
    let mut consumers = consumers_on_go(ctx)?;
    let mut buf = [0u8; 64];
    for consumer in &mut consumers {
        consumer.recv_timeout(&mut buf, test_timeout())?;
    }
    let mut selector = Selector::new()?;
    let before = open_descriptors()?;
    let keys = consumers
        .iter()
        .map(|consumer| selector.add(consumer, Interest::Readable))
        .collect::<Result<Vec<_>, _>>()?;
    assert!(selector.try_wait().unwrap_err().is_would_block());
    let added = open_descriptors()? - before;
    let relay = ipc_core::internal::relay_fds().len();
    ctx.send(&format!("{added} {relay}"))?;
    assert_eq!(ctx.recv()?, "gone");
    let mut woken = HashSet::new();
    let deadline = test_deadline();
    while woken.len() < keys.len() {
        woken.extend(
            selector
                .wait_deadline(deadline)?
                .iter()
                .map(|key| key.index()),
        );
    }
    for consumer in &mut consumers {
        let err = consumer
            .try_recv(&mut buf)
            .expect_err("the producer was killed");
        assert!(err.is_peer_gone(), "{err}");
    }
    ctx.send("all woken")?;
    Ok(())
}

/// Under the peer's descriptor limit, opens the producers of channels arg 0-0 …, sends
/// each its number, reports the descriptors it has open and waits to be killed.
pub fn many_producers_role(ctx: &mut PeerContext) -> PeerResult {
    descriptor_limit(ctx)?;
    let mut producers = names(ctx)?
        .iter()
        .map(|name| options().open_producer(name))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, producer) in producers.iter_mut().enumerate() {
        producer.send_timeout(i.to_string().as_bytes(), test_timeout())?;
    }
    ctx.ready_with(&open_descriptors()?.to_string())?;
    loop {
        std::thread::park();
    }
}

/// Starts peer `role` on channels `prefix`-0 … `prefix`-(count - 1), whose soft
/// descriptor limit is `limit`.
fn spawn(role: &str, prefix: &IpcName, count: usize, limit: u64) -> Peer {
    Peer::builder(role)
        .arg(prefix.as_str())
        .arg(count.to_string())
        .arg(limit.to_string())
        .timeout(test_timeout() + Duration::from_secs(120))
        .spawn()
        .unwrap()
}

/// `count` channels between two processes whose soft descriptor limit is `limit`: each
/// end holds one descriptor, the peer process is watched through one shared pidfd, and its
/// death is seen on every channel.
fn channels_between_two_processes(count: usize, limit: u64) {
    let guard = LeakGuard::new();
    let prefix = guard.name("many");
    let mut consumers = spawn("many-consumers", &prefix, count, limit);
    let mut producers = spawn("many-producers", &prefix, count, limit);
    // The segments and a few of the process's own; one pidfd for the consumers' process,
    // not one per channel (which would not fit).
    let producer_fds: usize = producers.ready_payload().parse().unwrap();
    assert!(
        (count..count + 16).contains(&producer_fds),
        "{producer_fds}"
    );
    consumers.send("go").unwrap();
    let consumer_fds: usize = consumers.recv().unwrap().parse().unwrap();
    assert!(
        (count..count + 16).contains(&consumer_fds),
        "{consumer_fds}"
    );
    producers.kill().unwrap();
    consumers.send("gone").unwrap();
    assert_eq!(consumers.recv().unwrap(), "all saw it");
    consumers.wait_success().unwrap();
}

#[test]
fn a_thousand_channels_fit_under_the_default_descriptor_limit_and_share_one_pidfd_per_peer() {
    channels_between_two_processes(CHANNELS, DEFAULT_NOFILE);
}

#[test]
fn ten_thousand_channels_fit_under_a_limit_raised_just_past_them() {
    channels_between_two_processes(10_000, 10_064);
}

#[test]
fn a_polled_end_adds_one_descriptor_its_wake_fifo() {
    let guard = LeakGuard::new();
    let prefix = guard.name("polled");
    let mut consumers = spawn("polled-consumers", &prefix, POLLED, DEFAULT_NOFILE);
    let mut producers = spawn("many-producers", &prefix, POLLED, DEFAULT_NOFILE);
    producers.ready_payload();
    consumers.send("go").unwrap();
    let report = consumers.recv().unwrap();
    let (added, relay) = report.split_once(' ').unwrap();
    let (added, relay): (usize, usize) = (added.parse().unwrap(), relay.parse().unwrap());
    // Per end, its wake FIFO and the selector's duplicate of it; once for the process,
    // the relay's epoll set and timer, and one pidfd for the producers' process, which
    // every waiter shares (the receives found their messages without waiting, so had
    // opened none).
    assert_eq!(relay, 2);
    assert_eq!(added, 2 * POLLED + relay + 1, "{report}");
    producers.kill().unwrap();
    consumers.send("gone").unwrap();
    assert_eq!(consumers.recv().unwrap(), "all woken");
    consumers.wait_success().unwrap();
}
