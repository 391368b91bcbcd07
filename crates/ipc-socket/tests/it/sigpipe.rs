// The test restores SIGPIPE's default disposition, which nix marks unsafe.
#![allow(unsafe_code)]

use std::os::unix::net::UnixStream;

use ipc_socket::{FramedWriter, MessageSender, Seqpacket, UnixSocketExt};
use ipc_testkit::{Peer, PeerContext, PeerResult};
use nix::sys::signal::{SigHandler, Signal, signal};

/// With `SIGPIPE` at its default action (death), every send path to a closed peer fails
/// with an error and the process lives on.
pub fn sigpipe_role(ctx: &mut PeerContext) -> PeerResult {
    // SAFETY: setting the default disposition installs no handler code.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }?;
    ctx.ready()?;
    let mut outcomes = Vec::new();
    for size in [10usize, 100_000] {
        let (a, b) = UnixStream::pair()?;
        drop(b);
        let mut framed = FramedWriter::new(a);
        outcomes.push(format!(
            "framed-{size}:{}",
            framed.send(&vec![1u8; size]).unwrap_err().is_peer_gone()
        ));
        let (a, b) = UnixStream::pair()?;
        drop(b);
        let mut framed = FramedWriter::new(a);
        let err =
            MessageSender::send_timeout(&mut framed, &vec![1u8; size], ipc_testkit::test_timeout())
                .unwrap_err();
        outcomes.push(format!("timeout-{size}:{}", err.is_peer_gone()));
    }
    let (a, b) = Seqpacket::pair()?;
    drop(b);
    outcomes.push(format!(
        "seqpacket:{}",
        a.send(b"x").unwrap_err().is_peer_gone()
    ));
    outcomes.push(format!(
        "fds:{}",
        a.send_with_fds(b"x", &[]).unwrap_err().is_peer_gone()
    ));
    ctx.send(&outcomes.join(" "))?;
    Ok(())
}

#[test]
fn a_closed_peer_is_an_error_not_a_death() {
    let mut peer = Peer::spawn("sigpipe", &[]);
    let outcomes = peer.recv().unwrap();
    peer.wait_success().unwrap();
    assert_eq!(
        outcomes,
        "framed-10:true timeout-10:true framed-100000:true timeout-100000:true seqpacket:true fds:true"
    );
}
