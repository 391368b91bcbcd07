//! Asynchronous fire-and-forget over a POSIX message queue: producers send events with
//! priorities and never wait for an answer; the consumer sleeps until the queue has
//! something, woken by the queue's notification (no signals, no polling loop), and takes
//! alerts before routine events.
//!
//! ```text
//! cargo run -p ipc-examples --bin mq_events -- [PRODUCERS] [EVENTS]
//! ```

// The one unsafe line: promising that the message types are plain data (`ShmSafe`).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_mq::{Deadline, Direction, IpcName, QueueOptions, ShmSafe};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// An event: who sent it and its number in that producer's stream.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Event {
    producer: u32,
    seq: u32,
}

// SAFETY: repr(C), two u32, no padding.
unsafe impl ShmSafe for Event {}

const ROUTINE: u32 = 1;
const ALERT: u32 = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("producer") => producer(&args[1..]),
        _ => consumer(
            args.first().map_or("2", String::as_str),
            args.get(1).map_or("500", String::as_str),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mq_events: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Fires `count` events, every tenth an alert, as fast as the queue takes them.
fn producer(args: &[String]) -> Result<()> {
    let queue = QueueOptions::new().open(
        &IpcName::new(args.first().ok_or("no queue")?.as_str())?,
        Direction::Send,
    )?;
    let me: u32 = args.get(1).ok_or("no producer number")?.parse()?;
    let count: u32 = args.get(2).ok_or("no count")?.parse()?;
    for seq in 0..count {
        let priority = if seq % 10 == 9 { ALERT } else { ROUTINE };
        queue.send_value_timeout(
            &Event { producer: me, seq },
            priority,
            Duration::from_secs(10),
        )?;
    }
    Ok(())
}

fn consumer(producers: &str, events: &str) -> Result<()> {
    let producers: u32 = producers.parse()?;
    let per_producer: u32 = events.parse()?;
    let name = IpcName::unique("ipcrs-example-events")?;
    let queue = QueueOptions::new().max_message_size(8).create(&name)?;
    let mut notification = queue.notify()?;
    let mut armed = true;
    let mut children = (0..producers)
        .map(|p| {
            spawn_self(
                &["producer", name.as_str(), &p.to_string(), events],
                Stdio::null(),
                Stdio::inherit(),
            )
        })
        .collect::<std::io::Result<Vec<_>>>()?;

    let total = u64::from(producers) * u64::from(per_producer);
    let mut received = 0u64;
    let mut wakeups = 0u64;
    // For each producer, the next routine event expected (routine events keep their order).
    let mut next_routine: HashMap<u32, u32> = HashMap::new();
    let mut alerts_early = 0u64;
    while received < total {
        // Drain; after re-arming, look again: a message that arrived between the last
        // receive and the re-arm would not notify (the queue was not empty).
        loop {
            match queue.try_recv_value::<Event>() {
                Ok((event, priority)) => {
                    received += 1;
                    let next = next_routine.entry(event.producer).or_insert(0);
                    if priority == ROUTINE {
                        if event.seq < *next {
                            return Err(format!("routine event {event:?} out of order").into());
                        }
                        *next = event.seq + 1;
                    } else if event.seq > *next {
                        // Taken while older routine events of its producer still waited.
                        alerts_early += 1;
                    }
                }
                Err(err) if err.is_would_block() => break,
                Err(err) => return Err(err.into()),
            }
        }
        if received == total {
            break;
        }
        if !armed {
            notification.rearm()?;
            armed = true;
            if queue.attributes()?.queued > 0 {
                continue;
            }
        }
        // Registrations are one-shot: once this returns, it must be re-armed. (If it fired
        // while this process was draining, the wait returns at once.)
        notification.wait_deadline(Deadline::after(Duration::from_secs(10)))?;
        armed = false;
        wakeups += 1;
    }
    for child in &mut children {
        if !child.wait()?.success() {
            return Err("a producer failed".into());
        }
    }
    println!("consumer: {received} events from {producers} producers, none lost");
    println!("consumer: woken {wakeups} times by the queue's notification");
    println!("consumer: {alerts_early} alerts overtook routine events sent before them");
    Ok(())
}
