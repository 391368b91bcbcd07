// The test restores SIGPIPE's default disposition and reads the pending set, raw.
#![allow(unsafe_code)]

use std::io::Write;

use ipc_pipe::{VmspliceWriter, pipe, splice};
use ipc_testkit::{Peer, PeerContext, PeerResult};
use nix::sys::signal::{SigHandler, Signal, signal};

/// With `SIGPIPE` at its default action (death), writes to a pipe without readers through
/// every path of the crate fail with `BrokenPipe`, and the process lives on.
pub fn sigpipe_default_role(ctx: &mut PeerContext) -> PeerResult {
    // SAFETY: setting the default disposition installs no handler code.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }?;
    ctx.ready()?;
    let mut outcomes = Vec::new();

    let (r, mut w) = pipe()?;
    drop(r);
    let err = w.write(b"x").unwrap_err();
    outcomes.push(format!("write:{:?}", err.kind()));
    let err = w.try_write(b"x").unwrap_err();
    outcomes.push(format!("try_write:{}", err.is_peer_gone()));

    let (source, mut feed) = pipe()?;
    feed.write_all(b"data")?;
    let (r, w) = pipe()?;
    drop(r);
    outcomes.push(format!(
        "splice:{}",
        splice(&source, &w, 4).unwrap_err().is_peer_gone()
    ));

    let (r, w) = pipe()?;
    drop(r);
    let mut sender = VmspliceWriter::new(w);
    outcomes.push(format!(
        "vmsplice:{}",
        sender.send(vec![1; 10]).unwrap_err().is_peer_gone()
    ));

    // Nothing is left pending to kill the process later, should the mask be reset.
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigpending` fills the set it is given; `sigismember` reads it after that.
    let pending = unsafe {
        libc::sigpending(set.as_mut_ptr());
        libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    };
    outcomes.push(format!("pending:{pending}"));
    ctx.send(&outcomes.join(" "))?;
    Ok(())
}

#[test]
fn dead_reader_is_an_error_not_a_death() {
    let mut peer = Peer::spawn("sigpipe-default", &[]);
    let outcomes = peer.recv().unwrap();
    peer.wait_success().unwrap();
    assert_eq!(
        outcomes,
        "write:BrokenPipe try_write:true splice:true vmsplice:true pending:false"
    );
}
