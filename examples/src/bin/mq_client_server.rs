//! Synchronous request-reply over POSIX message queues: one server queue, one reply queue
//! per client, correlation ids, several client processes.
//!
//! ```text
//! cargo run -p ipc-examples --bin mq_client_server -- [CLIENTS] [REQUESTS]
//! ```
//!
//! The server creates its queue and starts the clients as separate processes. Each client
//! creates its own reply queue (named after the server's and its client number), sends
//! typed requests that carry its number and a correlation id, and waits for the reply with
//! that id, with a timeout. The server answers each request on the client's reply queue and
//! stops when every client has said goodbye.

// The one unsafe line: promising that the message types are plain data (`ShmSafe`).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_mq::{Direction, IpcName, MessageQueue, QueueOptions, ShmSafe};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What a client asks: the square of `operand`, or (with `bye`) nothing more.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Request {
    client: u32,
    correlation: u32,
    operand: u64,
    bye: u64,
}

/// The server's answer to request `correlation`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Reply {
    correlation: u32,
    _pad: u32,
    square: u64,
}

// SAFETY: repr(C), integers only, no padding (4 + 4 + 8 + 8 and 4 + 4 + 8 bytes).
unsafe impl ShmSafe for Request {}
// SAFETY: as above.
unsafe impl ShmSafe for Reply {}

const WAIT: Duration = Duration::from_secs(10);

fn reply_queue_name(server: &IpcName, client: u32) -> Result<IpcName> {
    Ok(IpcName::new(format!("{}-reply-{client}", server.as_str()))?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("client") => client(&args[1..]),
        _ => server(
            args.first().map_or("3", String::as_str),
            args.get(1).map_or("1000", String::as_str),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mq_client_server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn client(args: &[String]) -> Result<()> {
    let server_name = IpcName::new(args.first().ok_or("no server queue")?.as_str())?;
    let me: u32 = args.get(1).ok_or("no client number")?.parse()?;
    let requests: u32 = args.get(2).ok_or("no request count")?.parse()?;
    let server = QueueOptions::new().open(&server_name, Direction::Send)?;
    // Replies are small: a queue of 16-byte messages.
    let replies = QueueOptions::new()
        .capacity(4)
        .max_message_size(16)
        .create(&reply_queue_name(&server_name, me)?)?;
    for correlation in 0..requests {
        let operand = u64::from(me) * 1_000_000 + u64::from(correlation);
        let request = Request {
            client: me,
            correlation,
            operand,
            bye: 0,
        };
        server.send_value_timeout(&request, 0, WAIT)?;
        let (reply, _): (Reply, u32) = replies.recv_value_timeout(WAIT)?;
        if reply.correlation != correlation || reply.square != operand * operand {
            return Err(
                format!("client {me}: a wrong reply to request {correlation}: {reply:?}").into(),
            );
        }
    }
    let bye = Request {
        client: me,
        correlation: requests,
        operand: 0,
        bye: 1,
    };
    server.send_value_timeout(&bye, 0, WAIT)?;
    println!("client {me}: {requests} requests answered, each with its own correlation id");
    Ok(())
}

fn server(clients: &str, requests: &str) -> Result<()> {
    let clients: u32 = clients.parse()?;
    let name = IpcName::unique("ipcrs-example-server")?;
    let queue = QueueOptions::new().max_message_size(64).create(&name)?;
    let mut children = (0..clients)
        .map(|client| {
            spawn_self(
                &["client", name.as_str(), &client.to_string(), requests],
                Stdio::null(),
                Stdio::inherit(),
            )
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut reply_queues: HashMap<u32, MessageQueue> = HashMap::new();
    let mut answered = 0u64;
    let mut remaining = clients;
    while remaining > 0 {
        let (request, _): (Request, u32) = queue.recv_value_timeout(WAIT)?;
        if request.bye != 0 {
            reply_queues.remove(&request.client);
            remaining -= 1;
            continue;
        }
        // A client's reply queue is opened on its first request (it exists by then: the
        // client creates it before sending).
        let replies = match reply_queues.entry(request.client) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                QueueOptions::new()
                    .open(&reply_queue_name(&name, request.client)?, Direction::Send)?,
            ),
        };
        let reply = Reply {
            correlation: request.correlation,
            _pad: 0,
            square: request.operand * request.operand,
        };
        replies.send_value_timeout(&reply, 0, WAIT)?;
        answered += 1;
    }
    for child in &mut children {
        if !child.wait()?.success() {
            return Err("a client failed".into());
        }
    }
    println!("server: {answered} requests from {clients} clients answered");
    Ok(())
}
