//! One `Selector` over every kind of endpoint, in a server process, with the clients in
//! this one: each message is seen where it arrived, a process's exit and a shutdown signal
//! end waits too, and the server removes its objects when it stops.

use std::collections::HashMap;
use std::sync::Arc;

use ipc_core::Interest::Readable;
use ipc_core::{IpcName, Key, MessageReceiver, Selector};
use ipc_mq::{Direction, QueueOptions};
use ipc_pipe::Fifo;
use ipc_sem::SemaphoreOptions;
use ipc_shm::{ChannelOptions, ShmOptions};
use ipc_signal::{Process, ShutdownOptions, Signal};
use ipc_socket::{Datagram, Seqpacket, SeqpacketListener, UnixAddr};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};

fn channel() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(4096)
        .max_message_size(64)
        .timeout(test_timeout())
}

/// What a key of the server's selector stands for.
enum Endpoint {
    Queue,
    Fifo,
    Listener,
    Connection(Seqpacket),
    Datagram,
    Channel,
    Semaphore,
    Process,
    Shutdown,
}

/// Creates a queue, a channel and a semaphore segment named after arg 0, a FIFO, a
/// seqpacket listener and a datagram socket in directory arg 1, watches process arg 2 and
/// a shutdown, all in one selector; reports each event as a line ("queue <text>", ...)
/// until a shutdown signal, then reports "shutdown" and removes everything.
pub fn select_server_role(ctx: &mut PeerContext) -> PeerResult {
    let shutdown = ShutdownOptions::new().install()?;
    let base = ctx.arg(0)?.to_owned();
    let dir = std::path::PathBuf::from(ctx.arg(1)?);
    let named = |kind: &str| IpcName::new(format!("{base}-{kind}"));
    let queue = QueueOptions::new()
        .capacity(4)
        .max_message_size(64)
        .create(&named("queue")?)?;
    let fifo = Fifo::create(dir.join("fifo"))?;
    let fifo_reader = fifo.open_reader()?;
    let listener = SeqpacketListener::bind(&UnixAddr::path(dir.join("seqpacket")))?;
    let mut datagram = Datagram::bind(&UnixAddr::path(dir.join("datagram")))?;
    let mut consumer = channel().create_consumer(&named("channel")?)?;
    let segment = Arc::new(ShmOptions::new().size(4096).create(&named("sem")?)?);
    let sem = SemaphoreOptions::new().init_in(Arc::clone(&segment), 0)?;
    let process = Process::open(ctx.arg(2)?.parse()?)?;

    let mut selector = Selector::new()?;
    let mut endpoints: HashMap<Key, Endpoint> = HashMap::new();
    endpoints.insert(selector.add(&queue, Readable)?, Endpoint::Queue);
    endpoints.insert(selector.add(&fifo_reader, Readable)?, Endpoint::Fifo);
    endpoints.insert(selector.add(&listener, Readable)?, Endpoint::Listener);
    endpoints.insert(selector.add(&datagram, Readable)?, Endpoint::Datagram);
    endpoints.insert(selector.add(&consumer, Readable)?, Endpoint::Channel);
    endpoints.insert(selector.add(&sem, Readable)?, Endpoint::Semaphore);
    endpoints.insert(selector.add(&process, Readable)?, Endpoint::Process);
    endpoints.insert(selector.add(&shutdown, Readable)?, Endpoint::Shutdown);
    ctx.ready()?;

    let mut buf = [0u8; 64];
    let text = |buf: &[u8]| String::from_utf8_lossy(buf).into_owned();
    'serve: loop {
        // The shutdown also cancels waits, but its descriptor is written first: the
        // selector reports its key rather than a cancelled wait.
        let ready = selector.wait()?.to_vec();
        for key in ready {
            let report: ipc_core::Result<String> = match endpoints.get_mut(&key) {
                Some(Endpoint::Queue) => queue
                    .try_recv(&mut buf)
                    .map(|n| format!("queue {}", text(&buf[..n]))),
                Some(Endpoint::Fifo) => match fifo_reader.try_read(&mut buf) {
                    Ok(0) => {
                        // The writer left: a FIFO without writers reads end of file
                        // for good, so it leaves the selector.
                        selector.remove(key)?;
                        Ok("fifo closed".to_owned())
                    }
                    read => read.map(|n| format!("fifo {}", text(&buf[..n]))),
                },
                Some(Endpoint::Listener) => match listener.try_accept() {
                    Ok((connection, _)) => {
                        let added = selector.add(&connection, Readable)?;
                        endpoints.insert(added, Endpoint::Connection(connection));
                        Ok("accepted".to_owned())
                    }
                    Err(err) => Err(err),
                },
                Some(Endpoint::Connection(connection)) => connection
                    .try_recv(&mut buf)
                    .map(|n| format!("seqpacket {}", text(&buf[..n]))),
                Some(Endpoint::Datagram) => datagram
                    .try_recv(&mut buf)
                    .map(|n| format!("datagram {}", text(&buf[..n]))),
                Some(Endpoint::Channel) => consumer
                    .try_recv(&mut buf)
                    .map(|n| format!("channel {}", text(&buf[..n]))),
                Some(Endpoint::Semaphore) => sem.try_wait().map(|()| "semaphore".to_owned()),
                Some(Endpoint::Process) => {
                    selector.remove(key)?;
                    Ok("process exited".to_owned())
                }
                Some(Endpoint::Shutdown) => break 'serve,
                None => return Err(format!("unknown key {key:?}").into()),
            };
            match report {
                Ok(report) => ctx.send(&report)?,
                // Readiness may be spurious (a channel whose producer has not attached is
                // re-checked every 20 ms): nothing to take.
                Err(err) if err.is_would_block() => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    ctx.send("shutdown")?;
    Ok(())
}

/// Says ready and sleeps until killed.
pub fn sleeper_role(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

#[test]
fn one_selector_serves_every_kind_of_endpoint_and_stops_on_a_shutdown_signal() {
    let guard = LeakGuard::new();
    let base = guard.name("select");
    let dir = guard.dir();
    let mut sleeper = Peer::spawn("sleeper", &[]);
    let mut server = Peer::spawn(
        "select-server",
        &[
            base.as_str(),
            dir.to_str().unwrap(),
            &sleeper.pid().to_string(),
        ],
    );
    let named = |kind: &str| IpcName::new(format!("{}-{kind}", base.as_str())).unwrap();

    let queue = QueueOptions::new()
        .open(&named("queue"), Direction::Send)
        .unwrap();
    queue.send(b"q1").unwrap();
    expect(&mut server, "queue q1");

    let fifo = Fifo::open(dir.join("fifo")).unwrap();
    let mut writer = fifo.open_writer().unwrap();
    std::io::Write::write_all(&mut writer, b"f1").unwrap();
    expect(&mut server, "fifo f1");
    drop(writer);
    expect(&mut server, "fifo closed");

    let connection = Seqpacket::connect(&UnixAddr::path(dir.join("seqpacket"))).unwrap();
    expect(&mut server, "accepted");
    connection.send(b"s1").unwrap();
    expect(&mut server, "seqpacket s1");

    let datagram = Datagram::unbound().unwrap();
    datagram
        .send_to(b"d1", &UnixAddr::path(dir.join("datagram")))
        .unwrap();
    expect(&mut server, "datagram d1");

    let mut producer = channel().open_producer(&named("channel")).unwrap();
    producer.send(b"c1").unwrap();
    expect(&mut server, "channel c1");
    producer.send(b"c2").unwrap();
    expect(&mut server, "channel c2");

    let segment = ShmOptions::new().open(&named("sem")).unwrap();
    let sem = SemaphoreOptions::new().open_in(&segment, 0).unwrap();
    sem.post().unwrap();
    expect(&mut server, "semaphore");

    sleeper.kill().unwrap();
    expect(&mut server, "process exited");

    Process::open(server.pid())
        .unwrap()
        .send(Signal::TERM)
        .unwrap();
    expect(&mut server, "shutdown");
    server.wait_success().unwrap();
    for left in ["fifo", "seqpacket", "datagram"] {
        assert!(!dir.join(left).exists(), "the server left {left}");
    }
    drop((
        queue, producer, sem, connection, datagram, fifo, server, sleeper,
    ));
    drop(segment);
    guard.check().unwrap();
}

fn expect(server: &mut Peer, line: &str) {
    assert_eq!(server.recv().unwrap(), line);
}
