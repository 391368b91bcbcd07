//! An async server on tokio that serves requests arriving three ways at once, and shuts
//! down cleanly on SIGTERM.
//!
//! ```text
//! cargo run -p ipc-examples --bin async_server
//! ```
//!
//! The supervisor starts the server as a separate process. On one current-thread runtime
//! the server awaits, in one `select!`: connections on a seqpacket socket (each served by a
//! task of its own, request and reply, after checking who the client is), jobs on a message
//! queue, jobs on a shared-memory channel, and the shutdown signal. A client that asks for
//! its report gets a descriptor of an in-memory file. On the signal the server stops
//! waiting, serves what is still queued, lets each connection finish its request, and
//! leaves. The supervisor runs three socket clients, a queue client and a channel client as
//! processes, waits until the server has handled everything, sends SIGTERM (SIGKILL after a
//! grace period) and checks that the server exited cleanly and removed its socket, queue
//! and channel.

use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_mq::{Direction, IpcName, MessageQueue, QueueOptions};
use ipc_shm::{ChannelOptions, Consumer};
use ipc_signal::{Process, Shutdown, ShutdownOptions, Termination};
use ipc_socket::{Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
use nix::sys::memfd::{MFdFlags, memfd_create};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How many jobs the queue client and the channel client each send.
const JOBS: usize = 5;
/// How many socket clients connect (the first asks for its report).
const SOCKET_CLIENTS: usize = 3;
/// Requests and jobs are short lines.
const MAX_MESSAGE: usize = 64;
/// How long a client waits for the server.
const PATIENCE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(&args[1..]),
        Some("socket-client") => socket_client(&args[1..]),
        Some("queue-client") => queue_client(&args[1..]),
        Some("channel-client") => channel_client(&args[1..]),
        _ => supervisor(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("async_server: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The socket path, the queue's name and the channel's name, from the command line.
fn names(args: &[String]) -> Result<(PathBuf, IpcName, IpcName)> {
    let [path, queue, channel, ..] = args else {
        return Err("expected a socket path, a queue name and a channel name".into());
    };
    Ok((
        PathBuf::from(path),
        IpcName::new(queue.as_str())?,
        IpcName::new(channel.as_str())?,
    ))
}

fn server(args: &[String]) -> Result<()> {
    let (path, queue_name, channel_name) = names(args)?;
    // Installed before the objects exist, so that no signal can find them half made.
    let shutdown = Arc::new(ShutdownOptions::new().install()?);
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path))?;
    let queue = QueueOptions::new()
        .max_message_size(MAX_MESSAGE)
        .create(&queue_name)?;
    let channel = ChannelOptions::new()
        .max_message_size(MAX_MESSAGE)
        .create_consumer(&channel_name)?;
    println!("ready");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listener, queue, channel, Arc::clone(&shutdown)))?;
    let signal = shutdown.signal().map_or("?".into(), |s| s.to_string());
    println!("server: {signal} received; removing my socket, queue and channel");
    // The listener, the queue and the channel are dropped here: their creator removes
    // their names.
    Ok(())
}

/// Serves until the shutdown signal, then finishes what is queued and what the
/// connections are doing.
async fn serve(
    listener: SeqpacketListener,
    queue: MessageQueue,
    channel: Consumer,
    shutdown: Arc<Shutdown>,
) -> Result<()> {
    let mut listener = ipc_socket::Async::new(listener);
    let mut queue = ipc_mq::Async::new(queue);
    let mut channel = ipc_shm::Async::new(channel);
    let mut channel_open = true;
    let mut connections = tokio::task::JoinSet::new();
    let (mut queue_buf, mut channel_buf) = ([0u8; MAX_MESSAGE], [0u8; MAX_MESSAGE]);
    // One future for the whole loop: every await below is cancellation-safe, so the
    // branches that lose a round lose nothing.
    let requested = shutdown.requested();
    tokio::pin!(requested);
    loop {
        tokio::select! {
            signal = &mut requested => {
                signal?;
                break;
            }
            accepted = listener.read_with(|l| l.try_accept()) => {
                let (conn, client) = accepted?;
                connections.spawn(connection(conn, client.pid, Arc::clone(&shutdown)));
            }
            job = queue.recv(&mut queue_buf) => {
                handle("queue", &queue_buf[..job?]);
            }
            job = channel.recv(&mut channel_buf), if channel_open => match job {
                Ok(len) => handle("channel", &channel_buf[..len]),
                // Its producer left: nothing more will come this way.
                Err(err) if err.is_peer_gone() => channel_open = false,
                Err(err) => return Err(err.into()),
            },
        }
    }
    // Only waits end on the signal: what is queued is still served.
    while let Ok(len) = queue.get_ref().try_recv(&mut queue_buf) {
        handle("queue", &queue_buf[..len]);
    }
    while let Ok(len) = channel.get_mut().try_recv(&mut channel_buf) {
        handle("channel", &channel_buf[..len]);
    }
    // Each connection task sees the same signal and ends after its current request.
    while let Some(ended) = connections.join_next().await {
        ended??;
    }
    Ok(())
}

fn handle(how: &str, job: &[u8]) {
    println!(
        "server: handled {:?} from the {how}",
        String::from_utf8_lossy(job)
    );
}

/// Answers one client's requests until it leaves or the server shuts down: "report"
/// gets a descriptor of a file made for it, anything else comes back in capitals.
async fn connection(conn: Seqpacket, pid: u32, shutdown: Arc<Shutdown>) -> Result<()> {
    let mut conn = ipc_socket::Async::new(conn);
    let mut buf = [0u8; MAX_MESSAGE];
    let requested = shutdown.requested();
    tokio::pin!(requested);
    loop {
        let len = tokio::select! {
            _ = &mut requested => return Ok(()),
            request = conn.recv(&mut buf) => match request {
                Ok(len) => len,
                Err(err) if err.is_peer_gone() => return Ok(()),
                Err(err) => return Err(err.into()),
            },
        };
        let request = String::from_utf8_lossy(&buf[..len]).into_owned();
        if request == "report" {
            let report = report_for(pid)?;
            conn.write_with(|c| c.try_send_with_fds(b"report", &[report.as_fd()]))
                .await?;
        } else {
            conn.send(request.to_uppercase().as_bytes()).await?;
        }
        println!("server: answered {request:?} from client {pid}");
    }
}

/// An in-memory file (`memfd`) holding the report for client `pid`, at its start.
fn report_for(pid: u32) -> Result<std::fs::File> {
    let mut file = std::fs::File::from(memfd_create("ipcrs-report", MFdFlags::MFD_CLOEXEC)?);
    write!(file, "report for process {pid}: all is well")?;
    file.rewind()?;
    Ok(file)
}

fn socket_client(args: &[String]) -> Result<()> {
    let (path, _, _) = names(args)?;
    let wants_report = args.get(3).is_some_and(|a| a == "report");
    let conn = Seqpacket::connect_timeout(&UnixAddr::path(&path), PATIENCE)?;
    let mut buf = [0u8; MAX_MESSAGE];
    conn.send(b"hello")?;
    let len = conn.recv_timeout(&mut buf, PATIENCE)?;
    let me = std::process::id();
    println!(
        "client {me}: got {:?}",
        String::from_utf8_lossy(&buf[..len])
    );
    if wants_report {
        conn.send(b"report")?;
        let (_, fds) = conn.recv_with_fds(&mut buf, 1)?;
        let fd = fds
            .into_iter()
            .next()
            .ok_or("the report came without a file")?;
        let mut report = String::new();
        std::fs::File::from(fd).read_to_string(&mut report)?;
        println!("client {me}: the file I was given says {report:?}");
    }
    Ok(())
}

fn queue_client(args: &[String]) -> Result<()> {
    let (_, queue_name, _) = names(args)?;
    let queue = QueueOptions::new().open(&queue_name, Direction::Send)?;
    for job in 0..JOBS {
        queue.send_timeout(format!("queue job {job}").as_bytes(), PATIENCE)?;
    }
    Ok(())
}

fn channel_client(args: &[String]) -> Result<()> {
    let (_, _, channel_name) = names(args)?;
    let mut producer = ChannelOptions::new()
        .max_message_size(MAX_MESSAGE)
        .timeout(PATIENCE)
        .open_producer(&channel_name)?;
    for job in 0..JOBS {
        producer.send_timeout(format!("channel job {job}").as_bytes(), PATIENCE)?;
    }
    Ok(())
}

fn supervisor() -> Result<()> {
    let path = std::env::temp_dir().join(format!("ipcrs-async-server-{}.sock", std::process::id()));
    let queue_name = IpcName::unique("ipcrs-example-jobs")?;
    let channel_name = IpcName::unique("ipcrs-example-channel")?;
    let names = [
        path.to_str()
            .ok_or("a temporary directory that is not UTF-8")?,
        queue_name.as_str(),
        channel_name.as_str(),
    ];
    let mut server = spawn_self(
        &[&["server"], &names[..]].concat(),
        Stdio::null(),
        Stdio::piped(),
    )?;
    let mut lines = BufReader::new(server.stdout.take().ok_or("no server output")?).lines();
    if lines.next().transpose()?.as_deref() != Some("ready") {
        return Err("the server did not start".into());
    }
    let mut clients = Vec::new();
    for n in 0..SOCKET_CLIENTS {
        let report: &[&str] = if n == 0 { &["report"] } else { &[] };
        let args = [&["socket-client"], &names[..], report].concat();
        clients.push(spawn_self(&args, Stdio::null(), Stdio::inherit())?);
    }
    for role in ["queue-client", "channel-client"] {
        let args = [&[role], &names[..]].concat();
        clients.push(spawn_self(&args, Stdio::null(), Stdio::inherit())?);
    }
    for mut client in clients {
        if !client.wait()?.success() {
            return Err("a client failed".into());
        }
    }
    // Every reply has reached its client; the jobs may still be on their way.
    let expected = SOCKET_CLIENTS + 1 + 2 * JOBS;
    let mut handled = 0;
    while handled < expected {
        let line = lines.next().ok_or("the server stopped early")??;
        println!("{line}");
        handled += 1;
    }
    let how = Process::open(server.id())?.terminate(PATIENCE)?;
    for line in lines {
        println!("{}", line?);
    }
    let status = server.wait()?;
    let how = match how {
        Termination::Graceful => "gracefully",
        Termination::Killed => "killed after the grace period",
    };
    println!("supervisor: the server ended {how} ({status})");
    println!(
        "supervisor: socket removed: {}, queue removed: {}, channel removed: {}",
        !path.exists(),
        is_gone_queue(&queue_name),
        is_gone_channel(&channel_name),
    );
    if !status.success()
        || path.exists()
        || !is_gone_queue(&queue_name)
        || !is_gone_channel(&channel_name)
    {
        return Err("the server did not shut down cleanly".into());
    }
    Ok(())
}

/// Whether no queue has this name (a zero timeout looks now instead of waiting for one).
fn is_gone_queue(name: &IpcName) -> bool {
    QueueOptions::new()
        .timeout(Duration::ZERO)
        .open(name, Direction::Send)
        .is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound)
}

/// Whether no channel has this name.
fn is_gone_channel(name: &IpcName) -> bool {
    ChannelOptions::new()
        .timeout(Duration::ZERO)
        .open_producer(name)
        .is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound)
}
