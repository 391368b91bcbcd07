//! `ipc`: see, debug and clean every IPC object on a Linux machine.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod messages;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ipc_cli::{Kind, ListOptions, Listing, MqueueDir, Object, Removal, State};
use messages::{Format, Rate, Received};

/// See, debug and clean every IPC object on this machine: POSIX shared memory, semaphores
/// and message queues, System V sets, segments and queues, FIFOs and Unix sockets, with the
/// processes that hold each of them.
#[derive(Debug, Parser)]
#[command(name = "ipc", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List objects: kind, name, owner, mode, size, creation time, creator, state and
    /// holders.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show what is inside an object: a channel's ring, positions and endpoints, a queue's
    /// attributes, a semaphore's value and waiters, a System V set's values and pids.
    Inspect(InspectArgs),
    /// Remove the named objects that no live process uses (a dry run unless --yes).
    Rm(RmArgs),
    /// Remove every stale object: those no live process uses (a dry run unless --yes).
    Clean(CleanArgs),
    /// Send messages to a queue, FIFO, Unix socket or channel: the arguments, or the lines
    /// of standard input (all of it as one message with --format raw).
    Send(SendArgs),
    /// Receive messages (taking them: a queue's or channel's other consumers will not get
    /// them) and print them.
    Recv(RecvArgs),
    /// Receive and print messages until interrupted (Ctrl-C).
    Tail(TailArgs),
    /// Receive messages and print messages and bytes per second, every second, until
    /// interrupted.
    Hz(HzArgs),
    /// Measure this machine: every mechanism against its raw floor, between two pinned
    /// processes (the runner of `cargo xtask bench`), written to ipc-report/.
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Which objects: the filters `ls` and `clean` share.
#[derive(Debug, Args)]
struct Filter {
    /// Only objects of these kinds: shm, channel, sem, mq, sysv-sem, sysv-shm, sysv-msg,
    /// fifo, socket (repeat, or separate with commas).
    #[arg(long, short, value_delimiter = ',')]
    kind: Vec<Kind>,
    /// Only objects owned by this user (a name or a uid).
    #[arg(long, short)]
    user: Option<String>,
    /// Only objects whose name starts with this (`/ipcrs-` for ipc-rs test objects).
    #[arg(long)]
    prefix: Option<String>,
    /// Also look for FIFOs and sockets in this directory (and two levels below); the
    /// temporary directory, /run and /dev/shm are always searched.
    #[arg(long, value_name = "DIR")]
    search: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct LsArgs {
    #[command(flatten)]
    filter: Filter,
    /// Only stale objects: those no live process uses.
    #[arg(long)]
    stale: bool,
    /// Print JSON (schema 1, in the crate's README) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The object: `/name` for POSIX objects, a path for FIFOs and sockets, the id for
    /// System V objects (as `ipc ls` shows them).
    name: String,
    /// The kind, when the name is taken by objects of several kinds.
    #[arg(long, short)]
    kind: Option<Kind>,
    /// Print JSON: the object as `ipc ls --json` shows it, and its `details`.
    #[arg(long)]
    json: bool,
}

/// The object messages go to or come from.
#[derive(Debug, Args)]
struct Target {
    /// `/name` for a queue or a channel, a path (or `@name`) for a FIFO or a socket.
    name: String,
    /// Its kind (mq, channel, fifo or socket); looked up when not given.
    #[arg(long, short)]
    kind: Option<Kind>,
    /// FIFOs and stream sockets: length-prefixed frames (ipc-rs framing), not bytes as
    /// they come.
    #[arg(long)]
    framed: bool,
}

#[derive(Debug, Args)]
struct SendArgs {
    #[command(flatten)]
    target: Target,
    /// The messages; without any, the lines of standard input.
    messages: Vec<String>,
    /// How the messages are written.
    #[arg(long, short, value_enum, default_value_t = Format::Utf8)]
    format: Format,
    /// A queue message's priority.
    #[arg(long, short, default_value_t = 0)]
    priority: u32,
}

#[derive(Debug, Args)]
struct RecvArgs {
    #[command(flatten)]
    target: Target,
    /// How many messages to receive.
    #[arg(long, short = 'n', default_value_t = 1)]
    count: u64,
    /// Give up (exit code 1) after this many seconds.
    #[arg(long, short)]
    timeout: Option<f64>,
    /// How messages are printed.
    #[arg(long, short, value_enum, default_value_t = Format::Utf8)]
    format: Format,
}

#[derive(Debug, Args)]
struct TailArgs {
    #[command(flatten)]
    target: Target,
    /// How messages are printed.
    #[arg(long, short, value_enum, default_value_t = Format::Utf8)]
    format: Format,
}

#[derive(Debug, Args)]
struct HzArgs {
    #[command(flatten)]
    target: Target,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
}

#[cfg(feature = "bench")]
#[derive(Debug, Args)]
struct BenchArgs {
    /// Small rounds, added until every ratio is settled or 110 s have passed (past the first
    /// three, only for the unsettled cases and their floors).
    #[arg(long)]
    quick: bool,
    /// Also measure iceoryx2, ipc-channel and interprocess on the same work (needs the
    /// `peers` feature at install time).
    #[arg(long)]
    peers: bool,
    /// Only the cases whose name contains this (such as `shm:`), with their floors.
    #[arg(long, value_name = "S")]
    only: Option<String>,
    /// Where to write report.md, report.json and report.svg.
    #[arg(long, value_name = "DIR", default_value = "ipc-report")]
    out: PathBuf,
    /// Also keep the report as the baseline DIR/baselines/NAME.json.
    #[arg(long, value_name = "NAME")]
    save: Option<String>,
    /// Compare two reports (paths, or names of saved baselines) instead of measuring.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    compare: Option<Vec<String>>,
}

#[cfg(feature = "bench")]
impl BenchArgs {
    /// The runner's arguments.
    fn runner_args(&self) -> Vec<String> {
        let mut args = vec!["--out".to_owned(), self.out.display().to_string()];
        if self.quick {
            args.push("--quick".to_owned());
        }
        if self.peers {
            args.push("--peers".to_owned());
        }
        for (flag, value) in [("--only", &self.only), ("--save", &self.save)] {
            if let Some(value) = value {
                args.extend([flag.to_owned(), value.clone()]);
            }
        }
        if let Some(reports) = &self.compare {
            args.push("--compare".to_owned());
            args.extend(reports.iter().cloned());
        }
        args
    }
}

#[derive(Debug, Args)]
struct RmArgs {
    /// The objects: `/name` for POSIX objects, a path for FIFOs and sockets, the id for
    /// System V objects (as `ipc ls` shows them).
    #[arg(required = true)]
    names: Vec<String>,
    /// The kind, when a name is taken by objects of several kinds.
    #[arg(long, short)]
    kind: Option<Kind>,
    /// Remove for real; without it, only say what would be removed.
    #[arg(long, short)]
    yes: bool,
}

#[derive(Debug, Args)]
struct CleanArgs {
    #[command(flatten)]
    filter: Filter,
    /// Remove for real; without it, only say what would be removed.
    #[arg(long, short)]
    yes: bool,
}

fn main() -> ExitCode {
    // A benchmark's peer is this executable started again in a role: it runs that, not
    // the command line.
    #[cfg(feature = "bench")]
    if ipc_bench::peer::role().is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return ipc_bench::runner::main(&args);
    }
    let cli = Cli::parse();
    #[cfg(feature = "bench")]
    if let Command::Bench(args) = &cli.command {
        return ipc_bench::runner::main(&args.runner_args());
    }
    // Queues are visible only in an mqueue file system; a private mount must be made while
    // this process has one thread, before anything else runs.
    let needs_queues = !matches!(cli.command, Command::Completions { .. });
    let mqueue = needs_queues.then(MqueueDir::open);
    let mut options = ListOptions::new();
    // Without a directory, the listing says that queues were not seen, and why.
    if let Some(Ok(dir)) = &mqueue {
        options.mqueue_dir(dir.path());
    }
    let result = match cli.command {
        Command::Ls(args) => ls(&args, options),
        Command::Inspect(args) => inspect(&args, &options),
        Command::Rm(args) => rm(&args, &options),
        Command::Clean(args) => clean(&args, options),
        Command::Send(args) => send(&args, &options),
        Command::Recv(args) => receive(
            &args.target,
            &options,
            Some(args.count),
            args.timeout,
            Output::Print(args.format),
        ),
        Command::Tail(args) => receive(
            &args.target,
            &options,
            None,
            None,
            Output::Print(args.format),
        ),
        Command::Hz(args) => receive(&args.target, &options, None, args.duration, Output::Rate),
        #[cfg(feature = "bench")]
        Command::Bench(_) => Ok(true),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ipc", &mut std::io::stdout());
            Ok(true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("ipc: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Lists what `filter` selects.
fn select(filter: &Filter, mut options: ListOptions) -> ipc_cli::Result<Listing> {
    options.kinds(&filter.kind);
    for dir in &filter.search {
        options.search(dir);
    }
    let mut listing = ipc_cli::list(&options)?;
    let uid = filter.user.as_deref().map(|user| {
        user.parse::<u32>().ok().or_else(|| {
            nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        })
    });
    listing.objects.retain(|object| {
        uid.is_none_or(|uid| Some(object.uid) == uid)
            && filter
                .prefix
                .as_deref()
                .is_none_or(|prefix| object.name.starts_with(prefix))
    });
    Ok(listing)
}

fn ls(args: &LsArgs, options: ListOptions) -> ipc_cli::Result<bool> {
    let mut listing = select(&args.filter, options)?;
    if args.stale {
        listing
            .objects
            .retain(|object| object.state == State::Stale);
    }
    if args.json {
        let document = serde_json::json!({
            "schema": 1,
            "objects": listing.objects,
            "unseen": listing.unseen,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
        return Ok(true);
    }
    print_table(&listing.objects);
    for note in &listing.unseen {
        eprintln!("ipc: not seen: {note}");
    }
    Ok(true)
}

/// The objects called `names` (of `kind`, if given), each looked up in one listing; an
/// error message for a name that is missing or ambiguous.
fn lookup(
    names: &[String],
    kind: Option<Kind>,
    options: &ListOptions,
) -> ipc_cli::Result<Vec<Result<Object, String>>> {
    let mut all = options.clone();
    if let Some(kind) = kind {
        all.kinds(&[kind]);
    }
    for name in names {
        if let Some(parent) = std::path::Path::new(name).parent() {
            all.search(parent);
        }
    }
    let listing = ipc_cli::list(&all)?;
    Ok(names
        .iter()
        .map(|name| {
            let matches: Vec<&Object> = listing
                .objects
                .iter()
                .filter(|object| &object.name == name)
                .collect();
            match matches.as_slice() {
                [] => Err(format!("{name}: no such object (see `ipc ls`)")),
                [object] => Ok((*object).clone()),
                several => {
                    let kinds: Vec<String> = several.iter().map(|o| o.kind.to_string()).collect();
                    Err(format!(
                        "{name} names objects of several kinds ({}): say which with --kind",
                        kinds.join(", ")
                    ))
                }
            }
        })
        .collect())
}

fn inspect(args: &InspectArgs, options: &ListOptions) -> ipc_cli::Result<bool> {
    let found = lookup(std::slice::from_ref(&args.name), args.kind, options)?;
    let object = match found.into_iter().next() {
        Some(Ok(object)) => object,
        Some(Err(message)) => {
            eprintln!("ipc: {message}");
            return Ok(false);
        }
        None => return Ok(false),
    };
    let details = ipc_cli::inspect(&object)?;
    if args.json {
        let details: serde_json::Map<String, serde_json::Value> = details
            .into_iter()
            .map(|(key, value)| (key, serde_json::Value::String(value)))
            .collect();
        let document = serde_json::json!({ "schema": 1, "object": object, "details": details });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
        return Ok(true);
    }
    let mut fields = vec![
        ("kind".to_owned(), object.kind.to_string()),
        ("name".to_owned(), object.name.clone()),
    ];
    if let Some(path) = &object.path {
        fields.push(("path".to_owned(), path.display().to_string()));
    }
    if let Some(key) = object.key {
        fields.push(("key".to_owned(), format!("{key:#010x}")));
    }
    fields.push((
        "owner".to_owned(),
        format!(
            "{} (uid {}), mode {:04o}",
            object.user.as_deref().unwrap_or("?"),
            object.uid,
            object.mode
        ),
    ));
    fields.push(("size".to_owned(), format!("{} bytes", object.size)));
    if let Some(created) = object.created {
        fields.push(("created".to_owned(), format!("{} UTC", utc(created))));
    }
    if let Some(pid) = object.creator {
        let alive = if object.creator_alive == Some(true) {
            "alive"
        } else {
            "gone"
        };
        fields.push(("creator".to_owned(), format!("pid {pid}, {alive}")));
    }
    fields.push(("state".to_owned(), object.reason.clone()));
    for holder in &object.holders {
        let how = serde_json::to_value(holder.how)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        fields.push((
            "held by".to_owned(),
            format!("pid {} ({}), {how}", holder.pid, holder.command),
        ));
    }
    fields.extend(details);
    let width = fields
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (key, value) in fields {
        println!("{:<width$}  {value}", format!("{key}:"), width = width + 1);
    }
    Ok(true)
}

/// The kind of `target`: as given, or looked up.
fn target_kind(target: &Target, options: &ListOptions) -> ipc_cli::Result<Option<Kind>> {
    if let Some(kind) = target.kind {
        return Ok(Some(kind));
    }
    let mut messaging = options.clone();
    messaging.kinds(&[Kind::Mq, Kind::Channel, Kind::Fifo, Kind::Socket]);
    match lookup(std::slice::from_ref(&target.name), None, &messaging)?.pop() {
        Some(Ok(object)) => Ok(Some(object.kind)),
        Some(Err(message)) => {
            eprintln!("ipc: {message}");
            Ok(None)
        }
        None => Ok(None),
    }
}

fn send(args: &SendArgs, options: &ListOptions) -> ipc_cli::Result<bool> {
    let Some(kind) = target_kind(&args.target, options)? else {
        return Ok(false);
    };
    let mut messages = Vec::new();
    if args.messages.is_empty() {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input).map_err(|e| {
            ipc_cli::Error::from(e)
                .with_op("read")
                .with_subject("standard input")
        })?;
        if args.format == Format::Raw {
            messages.push(input);
        } else {
            for line in String::from_utf8_lossy(&input).lines() {
                match messages::parse(line, args.format) {
                    Ok(message) => messages.push(message),
                    Err(why) => {
                        eprintln!("ipc: {why}");
                        return Ok(false);
                    }
                }
            }
        }
    } else {
        for text in &args.messages {
            match messages::parse(text, args.format) {
                Ok(message) => messages.push(message),
                Err(why) => {
                    eprintln!("ipc: {why}");
                    return Ok(false);
                }
            }
        }
    }
    let mut endpoint = messages::open(&args.target.name, kind, true, args.target.framed)?;
    for message in &messages {
        endpoint.send(message, args.priority)?;
    }
    eprintln!(
        "ipc: sent {} messages to {kind} {}",
        messages.len(),
        args.target.name
    );
    Ok(true)
}

/// What `receive` does with each message.
#[derive(Clone, Copy, Debug)]
enum Output {
    Print(Format),
    Rate,
}

/// Receives from `target` until `count` messages arrived (forever if `None`), `seconds`
/// passed, the other side ended, or a shutdown signal came.
fn receive(
    target: &Target,
    options: &ListOptions,
    count: Option<u64>,
    seconds: Option<f64>,
    output: Output,
) -> ipc_cli::Result<bool> {
    let Some(kind) = target_kind(target, options)? else {
        return Ok(false);
    };
    // Ctrl-C and SIGTERM end the loop (and cancel a wait in progress), so that a channel
    // end is closed, not left to a dead process.
    let shutdown = ipc_signal::ShutdownOptions::new().install()?;
    let mut endpoint = messages::open(&target.name, kind, false, target.framed)?;
    let deadline =
        seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs_f64(s.max(0.0)));
    let mut buf = Vec::new();
    let mut received = 0u64;
    let mut rate = Rate::new();
    let mut out = std::io::stdout().lock();
    let finished = loop {
        if count.is_some_and(|count| received >= count) {
            break true;
        }
        if shutdown.is_requested() {
            break count.is_none();
        }
        if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            // A duration ends `hz` normally; a timeout fails `recv`.
            break count.is_none();
        }
        match endpoint.recv(&mut buf) {
            Ok(Received::Message(len, priority)) => {
                received += 1;
                match output {
                    Output::Print(format) => {
                        let printed =
                            messages::print(&mut out, received, &buf[..len], priority, format)
                                .and_then(|()| out.flush());
                        // A closed pipe (`ipc tail … | head`): stop quietly.
                        if printed.is_err() {
                            break true;
                        }
                    }
                    Output::Rate => rate.count(len),
                }
            }
            Ok(Received::Nothing) => {}
            Ok(Received::Ended(why)) => {
                eprintln!("ipc: {kind} {}: {why}", target.name);
                break count.is_none_or(|count| received >= count);
            }
            Err(err) if err.is_cancelled() => break count.is_none(),
            Err(err) => return Err(err),
        }
        if let (Output::Rate, Some(line)) = (output, rate.tick()) {
            let _ = writeln!(out, "{line}");
        }
    };
    if let Output::Rate = output {
        let _ = writeln!(out, "{}", rate.total());
    }
    if !finished {
        eprintln!(
            "ipc: {kind} {}: {received} of {} messages received",
            target.name,
            count.unwrap_or_default()
        );
    }
    Ok(finished)
}

fn rm(args: &RmArgs, options: &ListOptions) -> ipc_cli::Result<bool> {
    let mut ok = true;
    for found in lookup(&args.names, args.kind, options)? {
        match found {
            Ok(object) => ok &= remove_one(&object, options, args.yes),
            Err(message) => {
                eprintln!("ipc: {message}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Removes (or in a dry run, judges) one object and says why; whether it was removable.
fn remove_one(object: &Object, options: &ListOptions, yes: bool) -> bool {
    let what = format!("{} {}", object.kind, object.name);
    if !yes {
        return match object.state {
            State::Live => {
                println!("would keep {what}: {}", object.reason);
                false
            }
            _ => {
                println!("would remove {what}: {}", object.reason);
                true
            }
        };
    }
    match ipc_cli::remove(object, options) {
        Ok(Removal::Removed(why)) => {
            println!("removed {what}: {why}");
            true
        }
        Ok(Removal::Kept(why)) => {
            println!("kept {what}: {why}");
            false
        }
        Err(err) => {
            eprintln!("ipc: {err}");
            false
        }
    }
}

fn clean(args: &CleanArgs, options: ListOptions) -> ipc_cli::Result<bool> {
    let listing = select(&args.filter, options.clone())?;
    let mut ok = true;
    let (mut removed, mut kept) = (0, 0);
    for object in &listing.objects {
        let what = format!("{} {}", object.kind, object.name);
        if object.state != State::Stale {
            println!("keep {what}: {}", object.reason);
            kept += 1;
            continue;
        }
        if !args.yes {
            println!("would remove {what}: {}", object.reason);
            removed += 1;
            continue;
        }
        match ipc_cli::remove(object, &options) {
            Ok(Removal::Removed(why)) => {
                println!("removed {what}: {why}");
                removed += 1;
            }
            Ok(Removal::Kept(why)) => {
                println!("keep {what}: {why}");
                kept += 1;
            }
            Err(err) => {
                eprintln!("ipc: {err}");
                ok = false;
            }
        }
    }
    let verb = if args.yes { "removed" } else { "would remove" };
    println!("ipc clean: {removed} {verb}, {kept} kept");
    if !args.yes && removed > 0 {
        println!("(a dry run: add --yes to remove them)");
    }
    for note in &listing.unseen {
        eprintln!("ipc: not seen: {note}");
    }
    Ok(ok)
}

fn print_table(objects: &[Object]) {
    let header = [
        "KIND", "NAME", "OWNER", "MODE", "SIZE", "CREATED", "CREATOR", "STATE", "HELD BY",
        "DETAILS",
    ];
    let rows: Vec<[String; 10]> = objects
        .iter()
        .map(|o| {
            [
                o.kind.to_string(),
                o.name.clone(),
                o.user.clone().unwrap_or_else(|| o.uid.to_string()),
                format!("{:04o}", o.mode),
                o.size.to_string(),
                o.created.map(utc).unwrap_or_else(|| "-".to_owned()),
                match (o.creator, o.creator_alive) {
                    (Some(pid), Some(false)) => format!("{pid} (gone)"),
                    (Some(pid), _) => pid.to_string(),
                    (None, _) => "-".to_owned(),
                },
                match o.state {
                    State::Live => "live",
                    State::Stale => "stale",
                    State::Kept => "kept",
                }
                .to_owned(),
                holders(o),
                o.summary.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    if std::io::stdout().is_terminal() || !rows.is_empty() {
        println!("{}", line(header.to_vec()));
    }
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

fn holders(object: &Object) -> String {
    let mut shown: Vec<String> = Vec::new();
    for holder in &object.holders {
        let text = format!("{}/{}", holder.pid, holder.command);
        if !shown.contains(&text) {
            shown.push(text);
        }
    }
    match shown.len() {
        0 => "-".to_owned(),
        1..=3 => shown.join(","),
        n => format!("{},+{}", shown[..3].join(","), n - 3),
    }
}

/// `seconds` since the epoch as `YYYY-MM-DD HH:MM:SS` in UTC.
fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_417_340), "2026-12-04 20:49:00");
    }

    #[test]
    fn every_subcommand_has_help() {
        Cli::command().debug_assert();
    }
}
