//! A three-process pipeline over pipes: a producer writes records, a filter keeps and
//! transforms some of them, a consumer totals what arrives.
//!
//! ```text
//! cargo run -p ipc-examples --bin pipe_pipeline -- [RECORDS]
//! ```
//!
//! The parent creates two pipes and starts itself three times, handing each child its pipe
//! ends as stdin and stdout. Records travel as length-prefixed messages, so a record is
//! never split or merged with the next. When the producer finishes, closing its pipe ends
//! the filter's input, and so on down the line: no extra "stop" message is needed.

use std::io::{Write, stdin, stdout};
use std::process::{ExitCode, Stdio};

use ipc_examples::spawn_self;
use ipc_pipe::{FramedReader, FramedWriter, PipeReader, PipeWriter, pipe};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("producer") => producer(args.get(1).map_or("1000", String::as_str)),
        Some("filter") => filter(),
        Some("consumer") => consumer(),
        records => run_pipeline(records.unwrap_or("1000")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pipe_pipeline: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The parent: joins producer | filter | consumer and waits for all three.
fn run_pipeline(records: &str) -> Result<()> {
    let count: u32 = records
        .parse()
        .map_err(|_| format!("not a number of records: {records}"))?;
    let (filter_in, producer_out) = pipe()?;
    let (consumer_in, filter_out) = pipe()?;
    let mut producer = spawn_self(
        &["producer", &count.to_string()],
        Stdio::null(),
        Stdio::from(producer_out),
    )?;
    let mut filter = spawn_self(&["filter"], Stdio::from(filter_in), Stdio::from(filter_out))?;
    let mut consumer = spawn_self(&["consumer"], Stdio::from(consumer_in), Stdio::inherit())?;
    // The parent's copies of the pipe ends were moved into the `Stdio` values and are
    // closed now, so each stage sees end of file as soon as the stage before it exits.
    for (name, child) in [
        ("producer", &mut producer),
        ("filter", &mut filter),
        ("consumer", &mut consumer),
    ] {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("the {name} failed: {status}").into());
        }
    }
    Ok(())
}

/// Reads this process's stdin as a pipe.
fn stdin_pipe() -> Result<PipeReader> {
    use std::os::fd::AsFd;
    Ok(PipeReader::from(stdin().as_fd().try_clone_to_owned()?))
}

/// Writes this process's stdout as a pipe.
fn stdout_pipe() -> Result<PipeWriter> {
    use std::os::fd::AsFd;
    Ok(PipeWriter::from(stdout().as_fd().try_clone_to_owned()?))
}

/// Writes `count` records: `record <n>: <n squared>`.
fn producer(count: &str) -> Result<()> {
    let count: u32 = count.parse()?;
    let mut out = FramedWriter::new(stdout_pipe()?);
    for n in 0..count {
        out.send(format!("record {n}: {}", u64::from(n) * u64::from(n)).as_bytes())?;
    }
    Ok(())
}

/// Keeps the records with an even number and upper-cases them.
fn filter() -> Result<()> {
    let mut input = FramedReader::new(stdin_pipe()?);
    let mut out = FramedWriter::new(stdout_pipe()?);
    let mut buf = vec![0u8; input.max_message_size()];
    loop {
        let n = match input.recv(&mut buf) {
            Ok(n) => n,
            // The producer closed its end: the stream is over.
            Err(err) if err.is_peer_gone() => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let record = std::str::from_utf8(&buf[..n])?;
        let number: u64 = record
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .ok_or("a record without a number")?
            .parse()?;
        if number % 2 == 0 {
            out.send(record.to_uppercase().as_bytes())?;
        }
    }
}

/// Counts the records and prints the first, the last and the total.
fn consumer() -> Result<()> {
    let mut input = FramedReader::new(stdin_pipe()?);
    let mut buf = vec![0u8; input.max_message_size()];
    let (mut count, mut first, mut last) = (0u64, String::new(), String::new());
    loop {
        match input.recv(&mut buf) {
            Ok(n) => {
                last = String::from_utf8_lossy(&buf[..n]).into_owned();
                if count == 0 {
                    first.clone_from(&last);
                }
                count += 1;
            }
            Err(err) if err.is_peer_gone() => break,
            Err(err) => return Err(err.into()),
        }
    }
    let mut out = stdout().lock();
    writeln!(out, "consumer: {count} records")?;
    writeln!(out, "first: {first}")?;
    writeln!(out, "last: {last}")?;
    Ok(())
}
