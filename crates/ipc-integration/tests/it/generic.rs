//! The same message workload over every message-oriented mechanism, through
//! `MessageSender` and `MessageReceiver` only.

use std::time::Duration;

use ipc_integration::{Mechanism, Tally, encode, mechanism::MAX_MESSAGE};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};

/// Connects to mechanism arg 0 at address arg 1 and sends arg 3 messages as producer arg 2.
pub fn send_role(ctx: &mut PeerContext) -> PeerResult {
    let mechanism = Mechanism::parse(ctx.arg(0)?).ok_or("unknown mechanism")?;
    let mut sender = mechanism.connect(ctx.arg(1)?)?;
    let producer: u32 = ctx.arg(2)?.parse()?;
    let count: u64 = ctx.arg(3)?.parse()?;
    ctx.ready()?;
    let mut buf = Vec::new();
    for seq in 0..count {
        encode(producer, seq, MAX_MESSAGE, &mut buf);
        sender.send_timeout(&buf, test_timeout())?;
    }
    Ok(())
}

fn carry(mechanism: Mechanism, count: u64) {
    let guard = LeakGuard::new();
    let mut listening = mechanism
        .listen(guard.dir(), &guard.name(mechanism.name()))
        .unwrap();
    let mut sender = Peer::spawn(
        "send-workload",
        &[
            mechanism.name(),
            listening.address(),
            "1",
            &count.to_string(),
        ],
    );
    let mut receiver = listening.accept(test_timeout()).unwrap();
    let mut tally = Tally::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    for _ in 0..count {
        let n = receiver.recv_timeout(&mut buf, test_timeout()).unwrap();
        tally
            .record(&buf[..n])
            .unwrap_or_else(|e| panic!("{}: {e}", mechanism.name()));
    }
    sender.wait_success().unwrap();
    assert_eq!(tally.received(), count);
    if mechanism.reports_end() {
        let err = receiver.recv_timeout(&mut buf, test_timeout()).unwrap_err();
        assert!(err.is_peer_gone(), "{}: {err}", mechanism.name());
    } else {
        let err = receiver
            .recv_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err();
        assert!(err.is_timeout(), "{}: {err}", mechanism.name());
    }
}

#[test]
fn every_message_mechanism_carries_the_workload_intact_once_and_in_order() {
    for mechanism in Mechanism::ALL {
        carry(mechanism, 3000);
    }
}
