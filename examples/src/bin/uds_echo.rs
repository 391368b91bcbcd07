//! A Unix-socket echo server with many clients and credential checks.
//!
//! ```text
//! cargo run -p ipc-examples --bin uds_echo -- [CLIENTS]
//! ```
//!
//! The server binds an owner-only socket file, lets in only processes of its own user
//! (checked with `SO_PEERCRED` at accept, whatever the file permissions), and serves each
//! client on its own thread with length-prefixed messages. The demo starts the server,
//! then CLIENTS client processes that each make a few requests, then shuts the server
//! down; the socket file is gone afterwards.

use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_socket::{
    FramedReader, FramedWriter, ListenerOptions, MessageReceiver, Server, UnixAddr,
    connect_stream_timeout,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(10);
const REQUESTS: usize = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("client") => args
            .get(1)
            .ok_or_else(|| "missing socket path".into())
            .and_then(|path| client(path)),
        clients => demo(clients.unwrap_or("4")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("uds_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn demo(clients: &str) -> Result<()> {
    let clients: usize = clients.parse()?;
    let dir = std::env::temp_dir().join(format!("ipcrs-uds-echo-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let addr = UnixAddr::path(dir.join("echo.sock"));
    let me = nix::unistd::geteuid().as_raw();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let listener = ListenerOptions::new().allow_uids([me]).bind_stream(&addr)?;
    let server = Server::start(listener, move |stream, peer| {
        log.lock().unwrap_or_else(|p| p.into_inner()).push(peer);
        let (Ok(write_half), read_half) = (stream.try_clone(), stream) else {
            return;
        };
        let mut tx = FramedWriter::new(write_half);
        let mut rx = FramedReader::new(read_half);
        let mut buf = vec![0u8; 4096];
        // Serve until the client leaves (or the server shuts down).
        while let Ok(n) = rx.recv(&mut buf) {
            let reply = format!(
                "echo from server to pid {}: {}",
                peer.pid,
                String::from_utf8_lossy(&buf[..n])
            );
            if tx.send(reply.as_bytes()).is_err() {
                break;
            }
        }
    })?;
    println!("server: listening on {addr} (owner-only file, uid {me} only)");
    let path = addr
        .as_path()
        .ok_or("not a path")?
        .to_str()
        .ok_or("not UTF-8")?
        .to_owned();
    let mut children = Vec::new();
    for _ in 0..clients {
        children.push(spawn_self(
            &["client", &path],
            Stdio::null(),
            Stdio::inherit(),
        )?);
    }
    for mut child in children {
        if !child.wait()?.success() {
            return Err("a client failed".into());
        }
    }
    server.shutdown()?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
    println!(
        "server: served {seen} clients, all of uid {me}; socket file removed: {}",
        !dir.join("echo.sock").exists()
    );
    std::fs::remove_dir(&dir)?;
    Ok(())
}

fn client(path: &str) -> Result<()> {
    let stream = connect_stream_timeout(&UnixAddr::path(path), TIMEOUT)?;
    let mut tx = FramedWriter::new(stream.try_clone()?);
    let mut rx = FramedReader::new(stream);
    let mut buf = vec![0u8; 4096];
    for i in 0..REQUESTS {
        tx.send(format!("request {i}").as_bytes())?;
        let n = rx.recv_timeout(&mut buf, TIMEOUT)?;
        let reply = String::from_utf8_lossy(&buf[..n]);
        let expected = format!(
            "echo from server to pid {}: request {i}",
            std::process::id()
        );
        if reply != expected {
            return Err(format!("unexpected reply {reply:?}").into());
        }
    }
    println!(
        "client {}: {REQUESTS} requests answered",
        std::process::id()
    );
    Ok(())
}
