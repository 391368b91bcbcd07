//! A TCP client-server over loopback with the options people tune, deadlines and
//! length-prefixed messages.
//!
//! ```text
//! cargo run -p ipc-examples --bin tcp_echo
//! ```
//!
//! The server listens on an ephemeral loopback port with `TCP_NODELAY`, accepts with a
//! deadline, and answers each message with its length; the client connects with a
//! deadline and checks every answer.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use ipc_socket::{FramedReader, FramedWriter, MessageReceiver, TcpOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tcp_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let options = TcpOptions::new()
        .nodelay(true)
        .keepalive(Duration::from_secs(30));
    let acceptor = options.listen("127.0.0.1:0")?;
    let addr = acceptor.local_addr()?;
    println!("server: listening on {addr}");
    let server = std::thread::spawn(move || -> ipc_socket::Result<usize> {
        let (stream, peer) = acceptor.accept_timeout(TIMEOUT)?;
        println!("server: connection from {peer}");
        let mut tx = FramedWriter::new(stream.try_clone().map_err(ipc_socket::Error::from)?);
        let mut rx = FramedReader::new(stream);
        let mut buf = vec![0u8; 1 << 16];
        let mut answered = 0;
        loop {
            match rx.recv_timeout(&mut buf, TIMEOUT) {
                Ok(n) => {
                    tx.send(format!("{n} bytes").as_bytes())?;
                    answered += 1;
                }
                Err(err) if err.is_peer_gone() => return Ok(answered),
                Err(err) => return Err(err),
            }
        }
    });
    client(&options, addr)?;
    let answered = server.join().map_err(|_| "the server panicked")??;
    println!("server: answered {answered} messages; the client has left");
    Ok(())
}

fn client(options: &TcpOptions, addr: SocketAddr) -> Result<()> {
    let stream = options.connect_timeout(addr, TIMEOUT)?;
    let mut tx = FramedWriter::new(stream.try_clone()?);
    let mut rx = FramedReader::new(stream);
    let mut buf = [0u8; 64];
    for size in [1usize, 100, 10_000, 60_000] {
        tx.send(&vec![b'x'; size])?;
        let n = rx.recv_timeout(&mut buf, TIMEOUT)?;
        let answer = String::from_utf8_lossy(&buf[..n]);
        if answer != format!("{size} bytes") {
            return Err(format!("unexpected answer {answer:?}").into());
        }
        println!("client: sent {size} bytes, server says {answer:?}");
    }
    Ok(())
}
