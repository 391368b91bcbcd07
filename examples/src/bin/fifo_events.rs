//! Unrelated processes reporting events to a server through a named FIFO.
//!
//! ```text
//! cargo run -p ipc-examples --bin fifo_events -- server PATH CLIENTS
//! cargo run -p ipc-examples --bin fifo_events -- client PATH NAME EVENTS
//! cargo run -p ipc-examples --bin fifo_events -- [demo]
//! ```
//!
//! The server creates the FIFO (owner-only, removed when it exits) and reads events until
//! the given number of clients have said goodbye. Clients share nothing with the server
//! but the path: each opens the FIFO with a deadline (so it fails cleanly if no server
//! runs) and sends atomic frames, which the kernel never interleaves with other clients'.
//! `demo` starts a server and three clients as separate programs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_pipe::{Fifo, FifoOptions, FramedReader, FramedWriter, MessageReceiver};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How long a client waits for the server, and the server for the next event.
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fifo_events: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        Ok(args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}"))?)
    };
    match args.first().map(String::as_str) {
        Some("server") => server(Path::new(arg(1)?), arg(2)?.parse()?),
        Some("client") => client(Path::new(arg(1)?), arg(2)?, arg(3)?.parse()?),
        Some("demo") | None => demo(),
        Some(other) => Err(format!("unknown command {other}").into()),
    }
}

fn server(path: &Path, clients: usize) -> Result<()> {
    let fifo = Fifo::create(path)?;
    // Opening the reading end never blocks; reads wait for the first client.
    let mut events = FramedReader::new(fifo.open_reader()?);
    // A FIFO reports end of file whenever its last writer leaves, which would end the
    // server between two clients. Holding a writer of our own keeps it open: the server
    // decides when it is done (here: after every client said goodbye).
    let _keep_open = fifo.open_writer()?;
    println!("server: listening on {}", path.display());
    let mut per_client: BTreeMap<String, usize> = BTreeMap::new();
    let mut goodbyes = 0;
    let mut buf = vec![0u8; ipc_pipe::PIPE_BUF];
    while goodbyes < clients {
        let n = events.recv_timeout(&mut buf, TIMEOUT)?;
        let event = std::str::from_utf8(&buf[..n])?;
        let (client, what) = event.split_once(' ').ok_or("malformed event")?;
        if what == "goodbye" {
            goodbyes += 1;
        } else {
            *per_client.entry(client.to_owned()).or_default() += 1;
        }
    }
    for (client, count) in &per_client {
        println!("server: {client} sent {count} events");
    }
    // Dropping `fifo` removes the path.
    Ok(())
}

fn client(path: &Path, name: &str, events: usize) -> Result<()> {
    // Give a server that is still starting a second to make the FIFO.
    let fifo = FifoOptions::new()
        .timeout(Duration::from_secs(1))
        .open(path)?;
    let writer = fifo.open_writer_timeout(TIMEOUT)?;
    // Atomic frames: at most PIPE_BUF bytes each, never interleaved with other writers.
    let mut out = FramedWriter::new(writer).atomic();
    for i in 0..events {
        out.send(format!("{name} event-{i}").as_bytes())?;
    }
    out.send(format!("{name} goodbye").as_bytes())?;
    Ok(())
}

fn demo() -> Result<()> {
    let path: PathBuf =
        std::env::temp_dir().join(format!("ipcrs-fifo-events-{}", std::process::id()));
    let path_arg = path.to_str().ok_or("temporary path is not UTF-8")?;
    let mut server = spawn_self(&["server", path_arg, "3"], Stdio::null(), Stdio::piped())?;
    // The server's first line says it listens: the handshake before the clients start.
    let mut output = BufReader::new(server.stdout.take().ok_or("no server output")?);
    let mut line = String::new();
    output.read_line(&mut line)?;
    if !line.starts_with("server: listening") {
        return Err(format!("the server did not start: {line:?}").into());
    }
    print!("{line}");
    let mut clients = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        clients.push(spawn_self(
            &["client", path_arg, name, "100"],
            Stdio::null(),
            Stdio::inherit(),
        )?);
    }
    for mut child in clients {
        if !child.wait()?.success() {
            return Err("a client failed".into());
        }
    }
    let mut rest = String::new();
    output.read_to_string(&mut rest)?;
    print!("{rest}");
    if !server.wait()?.success() {
        return Err("the server failed".into());
    }
    Ok(())
}
