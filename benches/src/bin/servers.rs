//! Servers at scale: how many requests per second a server answers for 1 000 clients of a
//! 64-byte echo, how fairly, with how many threads and how much memory, under the usual
//! soft descriptor limit of 1 024 (issue 16, item 4). The servers, each a process of its
//! own, rounds interleaved:
//!
//! - `message-server`: `ipc_socket::MessageServer` (seqpacket, two threads);
//! - `message-server-stream`: the same on a Unix stream, each message framed (a 4-byte
//!   length and 60 bytes: 64 bytes on the wire, as the others);
//! - `serve-seqpacket`: `MessageServerOptions::serve`, the same server as tasks on a
//!   two-worker tokio runtime (seqpacket);
//! - `tokio-stream`: tokio's own `UnixStream`, an echo task per client on a two-worker
//!   runtime (the baseline);
//! - `async-seqpacket`: `Async<Seqpacket>` tasks on a two-worker runtime;
//! - `thread-per-client`: `ipc_socket::Server` (Unix stream, a thread per client);
//! - `message-server-tcp` and `tokio-tcp`: the message server and tokio's `TcpStream`
//!   echo on TCP over loopback (`TCP_NODELAY` on both sides), the TCP row's baseline.
//!
//! The load is one process with every client connection in one `epoll` set, each client
//! sending its next request as soon as the reply to its last one is in (closed loop),
//! pinned to one CPU and the server to another.
//! Fairness is the slowest client's requests over the mean; a client never answered
//! makes it 0, and one turned away is counted as refused.
//!
//! `cargo run --release -p ipc-bench --bin ipc-bench-servers [clients] [seconds] [rounds]
//! [kinds] [threads]`, where `kinds` (comma-separated, or `all`) picks servers to run beside
//! their baselines and `threads` is the message server's thread (or task) count, 2 by
//! default.

// The load generator adds its connections to an epoll set (`Poller::add`).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipc_socket::{MessageServerOptions, Seqpacket, SeqpacketListener, UnixAddr};
use polling::{Event, Events, PollMode, Poller};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const KINDS: [&str; 8] = [
    "message-server",
    "message-server-stream",
    "serve-seqpacket",
    "tokio-stream",
    "message-server-tcp",
    "tokio-tcp",
    "async-seqpacket",
    "thread-per-client",
];
const MESSAGE: usize = 64;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
        if let Some(cpu) = args.get(4).and_then(|c| c.parse().ok()) {
            ipc_bench::affinity::pin_to(cpu)?;
        }
        return serve(&args[1], &args[2], threads);
    }
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let clients = usize::try_from(number(0, 1000))?;
    let seconds = number(1, 3);
    let rounds = number(2, 3);
    // The message server's threads (or tasks, on tokio); tokio's runtimes have two workers.
    let threads = usize::try_from(number(4, 2))?;
    // Optionally only some servers (comma-separated kinds), and always their baselines.
    let only: Vec<&str> = args
        .get(3)
        .filter(|l| *l != "all")
        .map_or(KINDS.to_vec(), |list| {
            let asked: Vec<&str> = list.split(',').collect();
            KINDS
                .into_iter()
                .filter(|kind| {
                    asked
                        .iter()
                        .any(|asked| asked == kind || baseline(asked) == *kind)
                })
                .collect()
        });
    // The load on one CPU, each server on the other, as every benchmark here is pinned:
    // unpinned, the scheduler's placement of three busy threads on two CPUs moved the
    // ratios by more than the servers differ.
    let pair = ipc_bench::affinity::cpu_pair()?;
    if let Some((load_cpu, _)) = pair {
        ipc_bench::affinity::pin_to(load_cpu)?;
    }
    let server_cpu = pair.map(|(_, cpu)| cpu);
    let dir = std::env::temp_dir().join(format!("ipc-bench-servers-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut results: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    for round in 0..rounds {
        // Each round starts with another server, so that none always follows the same one
        // (a server run after one that left a thousand connections closing does worse).
        let mut order = only.clone();
        let start = usize::try_from(round)? % order.len().max(1);
        order.rotate_left(start);
        for kind in order {
            let path = dir.join(format!("{kind}-{round}.sock"));
            let time = Duration::from_secs(seconds);
            let outcome = measure(kind, &path, (threads, server_cpu), clients, time)?;
            eprintln!("round {round} {kind}: {outcome:?}");
            results.entry(kind).or_default().push(outcome);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "| server | requests/s (median of {rounds}) | × tokio (same transport), per round: median (range) | fairness (slowest / mean) | server CPU per request | tokio's CPU / its, per round | clients answered | refused | threads | RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let of =
        |outcomes: &[Outcome], f: fn(&Outcome) -> f64| median(outcomes.iter().map(f).collect());
    for &kind in &only {
        let outcomes = &results[kind];
        let tokio = &results[baseline(kind)];
        // Rounds interleave the servers: each round's ratio compares runs minutes apart at
        // most, which the machine's drift between rounds does not.
        let ratios: Vec<f64> = outcomes
            .iter()
            .zip(tokio)
            .map(|(o, t)| o.rate / t.rate)
            .collect();
        let cpu: Vec<f64> = outcomes
            .iter()
            .zip(tokio)
            .map(|(o, t)| t.cpu_us / o.cpu_us)
            .collect();
        let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "| {kind} | {:.0} k | {:.2} ({lowest:.2}–{highest:.2}) | {:.2} | {:.2} µs | {:.2} | {} | {} | {} | {:.1} MiB |",
            of(outcomes, |o| o.rate) / 1000.0,
            median(ratios.clone()),
            of(outcomes, |o| o.fairness),
            of(outcomes, |o| o.cpu_us),
            median(cpu),
            of(outcomes, |o| o.answered as f64),
            of(outcomes, |o| o.refused as f64),
            of(outcomes, |o| o.threads as f64),
            of(outcomes, |o| o.rss_kib as f64) / 1024.0,
        );
    }
    Ok(())
}

/// The tokio server `kind` is compared with: the same transport's.
fn baseline(kind: &str) -> &'static str {
    if kind.ends_with("tcp") {
        "tokio-tcp"
    } else {
        "tokio-stream"
    }
}

#[derive(Debug)]
struct Outcome {
    rate: f64,
    fairness: f64,
    answered: usize,
    refused: usize,
    threads: usize,
    rss_kib: usize,
    /// The server's CPU time (user and system) per request answered, in microseconds.
    cpu_us: f64,
}

/// Starts the server `kind` at `path`, loads it with `clients` for `time`, and stops it.
fn measure(
    kind: &str,
    path: &std::path::Path,
    (threads, cpu): (usize, Option<usize>),
    clients: usize,
    time: Duration,
) -> Result<Outcome> {
    let mut server = Command::new(std::env::current_exe()?)
        .args([
            "serve",
            kind,
            path.to_str().ok_or("path")?,
            &threads.to_string(),
        ])
        .args(cpu.map(|cpu| cpu.to_string()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    BufReader::new(server.stdout.take().ok_or("stdout")?).read_line(&mut ready)?;
    let transport = match kind {
        "message-server" | "serve-seqpacket" | "async-seqpacket" => Transport::Seqpacket,
        "message-server-tcp" | "tokio-tcp" => {
            let port = ready.trim().strip_prefix("ready ").ok_or("no port")?;
            Transport::Tcp(port.parse()?)
        }
        _ => Transport::Stream,
    };
    let outcome = load(path, transport, clients, time, &server);
    drop(server.stdin.take());
    stop(&mut server);
    outcome
}

fn stop(server: &mut Child) {
    let _ = server.kill();
    let _ = server.wait();
    // Let the kernel finish with the closed connections before the next server runs.
    std::thread::sleep(Duration::from_millis(500));
}

/// How the load's clients connect.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Seqpacket,
    Stream,
    /// To this port on 127.0.0.1.
    Tcp(u16),
}

/// One client connection of the load.
struct Client {
    socket: Box<dyn Conn>,
    got: usize,
    answered: u64,
    gone: bool,
}

trait Conn: AsFd {
    fn send(&self, msg: &[u8]) -> std::io::Result<()>;
    /// Reads what is there into `buf`; `Ok(0)` at the end.
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl Conn for Seqpacket {
    fn send(&self, msg: &[u8]) -> std::io::Result<()> {
        Seqpacket::send(self, msg).map_err(Into::into)
    }
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match Seqpacket::try_recv(self, buf) {
            Err(err) if err.is_peer_gone() => Ok(0),
            other => other.map_err(Into::into),
        }
    }
}

impl Conn for UnixStream {
    fn send(&self, msg: &[u8]) -> std::io::Result<()> {
        (&mut &*self).write_all(msg)
    }
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&mut &*self).read(buf)
    }
}

impl Conn for std::net::TcpStream {
    fn send(&self, msg: &[u8]) -> std::io::Result<()> {
        (&mut &*self).write_all(msg)
    }
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&mut &*self).read(buf)
    }
}

fn load(
    path: &std::path::Path,
    transport: Transport,
    clients: usize,
    time: Duration,
    server: &Child,
) -> Result<Outcome> {
    let addr = UnixAddr::path(path);
    let poller = Poller::new()?;
    let mut conns = Vec::with_capacity(clients);
    let mut refused = 0;
    // On streams a valid frame header (60 bytes follow), which the echo servers ignore.
    let mut request = [7u8; MESSAGE];
    if transport != Transport::Seqpacket {
        request[..4].copy_from_slice(&60u32.to_le_bytes());
    }
    for key in 0..clients {
        let socket: Box<dyn Conn> = match transport {
            Transport::Seqpacket => {
                Box::new(Seqpacket::connect_timeout(&addr, Duration::from_secs(10))?)
            }
            Transport::Stream => {
                let stream = ipc_socket::connect_stream_timeout(&addr, Duration::from_secs(10))?;
                stream.set_nonblocking(true)?;
                Box::new(stream)
            }
            Transport::Tcp(port) => {
                let stream = ipc_socket::TcpOptions::new()
                    .nodelay(true)
                    .connect_timeout(("127.0.0.1", port), Duration::from_secs(10))?;
                stream.set_nonblocking(true)?;
                Box::new(stream)
            }
        };
        if socket.send(&request).is_err() {
            refused += 1;
            continue;
        }
        // SAFETY: each connection is deleted from the poller (by dropping the poller first)
        // before it is closed: `conns` outlives `poller` in this function.
        unsafe {
            poller.add_with_mode(
                socket.as_fd().as_raw_fd(),
                Event::readable(key),
                PollMode::Level,
            )?;
        }
        conns.push((
            key,
            Client {
                socket,
                got: 0,
                answered: 0,
                gone: false,
            },
        ));
    }
    let mut by_key: Vec<Option<usize>> = vec![None; clients];
    for (index, (key, _)) in conns.iter().enumerate() {
        by_key[*key] = Some(index);
    }
    let mut events = Events::new();
    let mut buf = [0u8; MESSAGE];
    let start = Instant::now();
    let cpu_before = cpu_seconds(server.id());
    while start.elapsed() < time {
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let Some(index) = by_key.get(event.key).copied().flatten() else {
                continue;
            };
            let client = &mut conns[index].1;
            match client.socket.recv(&mut buf[client.got..]) {
                Ok(0) => {
                    client.gone = true;
                    let _ = poller.delete(client.socket.as_fd());
                }
                Ok(n) => {
                    client.got += n;
                    if client.got == MESSAGE {
                        client.got = 0;
                        client.answered += 1;
                        if client.socket.send(&request).is_err() {
                            client.gone = true;
                            let _ = poller.delete(client.socket.as_fd());
                        }
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    client.gone = true;
                    let _ = poller.delete(client.socket.as_fd());
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (threads, rss_kib) = status(server.id());
    let cpu = cpu_seconds(server.id()) - cpu_before;
    drop(poller);
    // A client closed at once (turned away) before it was ever answered is refused.
    refused += conns
        .iter()
        .filter(|(_, c)| c.gone && c.answered == 0)
        .count();
    let counted: Vec<u64> = conns
        .iter()
        .filter(|(_, c)| !(c.gone && c.answered == 0))
        .map(|(_, c)| c.answered)
        .collect();
    let total: u64 = counted.iter().sum();
    let mean = total as f64 / counted.len().max(1) as f64;
    let slowest = counted.iter().copied().min().unwrap_or(0) as f64;
    Ok(Outcome {
        rate: total as f64 / elapsed,
        fairness: if mean > 0.0 { slowest / mean } else { 0.0 },
        answered: counted.iter().filter(|&&n| n > 0).count(),
        refused,
        threads,
        rss_kib,
        cpu_us: cpu * 1e6 / total.max(1) as f64,
    })
}

/// The CPU time the process `pid` has used, user and system, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces), fields 14 and 15: utime, stime.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The server's thread count and resident memory, from `/proc`.
fn status(pid: u32) -> (usize, usize) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}

/// The server side: runs `kind` at `path` (the message server with `threads` threads or
/// tasks) under a soft limit of 1 024 descriptors until killed.
fn serve(kind: &str, path: &str, threads: usize) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, 1024.min(hard), hard)?;
    let addr = UnixAddr::path(path);
    let ready = || {
        println!("ready");
        let _ = std::io::stdout().flush();
    };
    match kind {
        "message-server" | "message-server-stream" | "message-server-tcp" => {
            let echo = |request: &[u8], _: &ipc_socket::Client, reply: &mut Vec<u8>| {
                reply.extend_from_slice(request);
            };
            let options = MessageServerOptions::new()
                .threads(threads)
                .max_message_size(MESSAGE);
            let _server = match kind {
                "message-server" => options.start(SeqpacketListener::bind(&addr)?, echo)?,
                "message-server-stream" => {
                    options.start(ipc_socket::StreamListener::bind(&addr)?, echo)?
                }
                _ => {
                    let acceptor = ipc_socket::TcpOptions::new()
                        .nodelay(true)
                        .listen("127.0.0.1:0")?;
                    let port = acceptor.local_addr()?.port();
                    let _server = options.start(acceptor, echo)?;
                    println!("ready {port}");
                    let _ = std::io::stdout().flush();
                    loop {
                        std::thread::park();
                    }
                }
            };
            ready();
            loop {
                std::thread::park();
            }
        }
        "thread-per-client" => {
            let _server = ipc_socket::Server::start(
                ipc_socket::StreamListener::bind(&addr)?,
                |stream, _| {
                    let mut buf = [0u8; MESSAGE];
                    while (&stream).read_exact(&mut buf).is_ok() {
                        if (&stream).write_all(&buf).is_err() {
                            break;
                        }
                    }
                },
            )?;
            ready();
            loop {
                std::thread::park();
            }
        }
        "tokio-stream" | "tokio-tcp" | "async-seqpacket" | "serve-seqpacket" => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async {
                match kind {
                    "tokio-stream" => tokio_stream(&addr, ready).await,
                    "tokio-tcp" => tokio_tcp().await,
                    "async-seqpacket" => async_seqpacket(&addr, ready).await,
                    _ => {
                        let listener = SeqpacketListener::bind(&addr)?;
                        ready();
                        let echo = |request: &[u8], _: &ipc_socket::Client, reply: &mut Vec<u8>| {
                            reply.extend_from_slice(request);
                        };
                        MessageServerOptions::new()
                            .threads(threads)
                            .max_message_size(MESSAGE)
                            .serve(listener, echo)
                            .await
                            .map_err(Into::into)
                    }
                }
            })
        }
        other => Err(format!("no server {other}").into()),
    }
}

async fn tokio_stream(addr: &UnixAddr, ready: impl Fn()) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::UnixListener::bind(addr.as_path().ok_or("path")?)?;
    ready();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of descriptors: tokio's own loop retries.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; MESSAGE];
            while stream.read_exact(&mut buf).await.is_ok() {
                if stream.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn tokio_tcp() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("ready {}", listener.local_addr()?.port());
    let _ = std::io::stdout().flush();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // As the message server's TCP connections are.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = [0u8; MESSAGE];
            while stream.read_exact(&mut buf).await.is_ok() {
                if stream.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn async_seqpacket(addr: &UnixAddr, ready: impl Fn()) -> Result<()> {
    let mut listener = ipc_socket::Async::new(SeqpacketListener::bind(addr)?);
    ready();
    loop {
        match listener.read_with(|l| l.try_accept()).await {
            Ok((conn, _)) => {
                tokio::spawn(async move {
                    let mut conn = ipc_socket::Async::new(conn);
                    let mut buf = [0u8; MESSAGE];
                    while let Ok(n) = conn.recv(&mut buf).await {
                        if conn.send(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
            // A client turned away (out of descriptors), or the registration failed.
            Err(_) => tokio::task::yield_now().await,
        }
    }
}
