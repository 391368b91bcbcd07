//! Many channels in one process: each end holds one descriptor of its own (its segment),
//! and the peer process is watched through one pidfd shared by all of them, so a thousand
//! channels fit under the default descriptor limit of 1 024.

use std::time::Duration;

use ipc_core::IpcName;
use ipc_shm::{ChannelOptions, WaitStrategy};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};

/// How many channels each process holds an end of.
const CHANNELS: usize = 1000;
/// The default soft limit on open descriptors.
const DEFAULT_NOFILE: u64 = 1024;

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(4096)
        .max_message_size(64)
        .wait_strategy(WaitStrategy::Blocking)
        .timeout(test_timeout())
}

fn names(prefix: &str) -> Result<Vec<IpcName>, ipc_core::Error> {
    (0..CHANNELS)
        .map(|i| IpcName::new(format!("{prefix}-{i}")))
        .collect()
}

/// Lowers this process's soft descriptor limit to the default one.
fn default_descriptor_limit() -> PeerResult {
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        DEFAULT_NOFILE.min(hard),
        hard,
    )?;
    Ok(())
}

fn open_descriptors() -> Result<usize, std::io::Error> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// Under the default descriptor limit, creates the consumers of channels arg 0-0 … and
/// reports ready; on "go", receives one message on each and finds its producer alive
/// (reporting the descriptors it then has open), then on "gone" waits on each until its producer is reported gone.
pub fn many_consumers_role(ctx: &mut PeerContext) -> PeerResult {
    default_descriptor_limit()?;
    let mut consumers = names(ctx.arg(0)?)?
        .iter()
        .map(|name| options().create_consumer(name))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.ready()?;
    assert_eq!(ctx.recv()?, "go");
    let mut buf = [0u8; 64];
    for (i, consumer) in consumers.iter_mut().enumerate() {
        let n = consumer.recv_timeout(&mut buf, test_timeout())?;
        assert_eq!(&buf[..n], i.to_string().as_bytes());
    }
    // A wait looks at the peer: alive on every channel, through the one pidfd (a pidfd
    // each would run out of descriptors, which must not pass for a death either).
    for consumer in &mut consumers {
        let err = consumer
            .recv_timeout(&mut buf, Duration::from_millis(1))
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

/// Under the default descriptor limit, opens the producers of channels arg 0-0 …, sends
/// each its number, reports the descriptors it has open and waits to be killed.
pub fn many_producers_role(ctx: &mut PeerContext) -> PeerResult {
    default_descriptor_limit()?;
    let mut producers = names(ctx.arg(0)?)?
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

#[test]
fn a_thousand_channels_fit_under_the_default_descriptor_limit_and_share_one_pidfd_per_peer() {
    let guard = LeakGuard::new();
    let prefix = guard.name("many");
    let mut consumers = Peer::builder("many-consumers")
        .arg(prefix.as_str())
        .timeout(test_timeout() + Duration::from_secs(60))
        .spawn()
        .unwrap();
    let mut producers = Peer::builder("many-producers")
        .arg(prefix.as_str())
        .timeout(test_timeout() + Duration::from_secs(60))
        .spawn()
        .unwrap();
    // A thousand segments and a few of the process's own; one pidfd for the consumers'
    // process, not one per channel (which would not fit).
    let producer_fds: usize = producers.ready_payload().parse().unwrap();
    assert!(producer_fds > CHANNELS, "{producer_fds}");
    consumers.send("go").unwrap();
    let consumer_fds: usize = consumers.recv().unwrap().parse().unwrap();
    assert!(consumer_fds > CHANNELS, "{consumer_fds}");
    producers.kill().unwrap();
    consumers.send("gone").unwrap();
    assert_eq!(consumers.recv().unwrap(), "all saw it");
    consumers.wait_success().unwrap();
}
