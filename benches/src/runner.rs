//! The comparison runner behind `cargo xtask bench`, `ipc-bench-runner` and `ipc bench`:
//! measures every case between two pinned processes, prints the Markdown tables and writes
//! `report.md`, `report.json` and `report.svg`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::case::{Case, PingPong, throughput};
use crate::channels::Flavour as ShmFlavour;
use crate::floor::{ShmPingPong, clock_overhead, run_peer, sample_one_way};
use crate::pipes::Flavour;
use crate::queues::Flavour as MqFlavour;
use crate::report::{JsonReport, Machine, Metric, Report, Row, compare};
use crate::sems::{Flavour as SemFlavour, Uncontended};
use crate::shm::{Copy, CopyBench};
use crate::signals::Flavour as SigFlavour;
use crate::sockets::Flavour as SocketFlavour;
use crate::stats::Summary;
use crate::{affinity, peer};
use ipc_core::Result;

/// The runner's options, as `--help` prints them.
pub const USAGE: &str =
    "usage: ipc-bench-runner [--quick] [--peers] [--out DIR] [--only S] [--save NAME]
       ipc-bench-runner --compare OLD NEW [--threshold PERCENT] [--out DIR]

  --quick        small rounds, added until every ratio is settled or 110 s have passed;
                 past the first three, only unsettled cases and their floors are measured
  --peers        also measure iceoryx2, ipc-channel and interprocess on the same work,
                 each beside the nearest ipc-rs mechanism (needs the `peers` feature,
                 which `cargo xtask bench --peers` turns on)
  --out DIR      where to write report.md, report.json and report.svg
                 (default: target/ipc-report)
  --only S       only the cases whose name contains S (such as `shm:` or `socket:tcp`),
                 with their floors; for working on one mechanism
  --save NAME    also keep report.json as the baseline DIR/baselines/NAME.json
  --compare A B  compare two reports (paths, or names of saved baselines) row by row and
                 flag changes beyond the noise threshold (default 5%); measures nothing";

struct Options {
    quick: bool,
    peers: bool,
    out: PathBuf,
    only: Option<String>,
    save: Option<String>,
    compare: Option<(String, String)>,
    threshold: f64,
}

impl Options {
    /// Whether `case` was asked for.
    fn wants(&self, case: Case) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| case.name().contains(only))
    }
}

/// The entries of `plan` that `options` asks for, and the floors they are compared with.
fn select<T>(
    plan: Vec<T>,
    options: &Options,
    case: impl Fn(&T) -> Case,
    floor: impl Fn(&T) -> Option<Case>,
) -> Vec<T> {
    let wanted: Vec<Case> = plan
        .iter()
        .filter(|entry| options.wants(case(entry)))
        .flat_map(|entry| [Some(case(entry)), floor(entry)])
        .flatten()
        .collect();
    plan.into_iter()
        .filter(|entry| wanted.contains(&case(entry)))
        .collect()
}

fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options {
        quick: false,
        peers: false,
        out: PathBuf::from("target/ipc-report"),
        only: None,
        save: None,
        compare: None,
        threshold: 0.05,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--peers" if cfg!(feature = "peers") => options.peers = true,
            "--peers" => {
                return Err(
                    "--peers needs the `peers` feature: run `cargo xtask bench --peers`".into(),
                );
            }
            "--out" => options.out = args.next().ok_or("--out needs a directory")?.into(),
            "--only" => options.only = Some(args.next().ok_or("--only needs a name")?.clone()),
            "--save" => options.save = Some(args.next().ok_or("--save needs a name")?.clone()),
            "--compare" => {
                let old = args.next().ok_or("--compare needs two reports")?.clone();
                let new = args.next().ok_or("--compare needs two reports")?.clone();
                options.compare = Some((old, new));
            }
            "--threshold" => {
                let percent: f64 = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .filter(|p: &f64| *p >= 0.0)
                    .ok_or("--threshold needs a percentage")?;
                options.threshold = percent / 100.0;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// Runs the runner with the command-line arguments `args` (without the program name), or,
/// in a process started as a benchmark's peer, that peer's role: call it first thing in
/// `main`, before any thread starts (the signal cases block signals in every thread).
pub fn main(args: &[String]) -> ExitCode {
    if let Err(err) = crate::signals::block_in_every_thread() {
        eprintln!("ipc-bench-runner: {err}");
        return ExitCode::FAILURE;
    }
    let args = args.to_vec();
    if let Some(role) = peer::role() {
        return match run_peer(&role, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("ipc-bench peer {role}: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match parse(&args) {
        Ok(options) => options,
        // Asked for: the usage on stdout and success.
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("ipc-bench-runner: {message}");
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((old, new)) = &options.compare {
        return match compare_reports(&options, old, new) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("ipc-bench-runner: {err}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&options) {
        Ok(report) => {
            print!("{}", report.to_markdown());
            if let Some(warning) = &report.machine.warning {
                eprintln!("ipc-bench-runner: WARNING: {warning}");
            }
            match crate::chart::write_report(&report, &options.out).and_then(|()| save(&options)) {
                Ok(()) => {
                    println!(
                        "\nwritten to {}/report.{{md,json,svg}}",
                        options.out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!(
                        "ipc-bench-runner: cannot write {}: {err}",
                        options.out.display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("ipc-bench-runner: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps `report.json` as a named baseline, if asked to.
fn save(options: &Options) -> std::io::Result<()> {
    let Some(name) = &options.save else {
        return Ok(());
    };
    let dir = options.out.join("baselines");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(
        options.out.join("report.json"),
        dir.join(format!("{name}.json")),
    )?;
    println!(
        "kept as the baseline {}",
        dir.join(format!("{name}.json")).display()
    );
    Ok(())
}

/// Reads a report: a path, or the name of a saved baseline.
fn load(options: &Options, which: &str) -> std::result::Result<JsonReport, String> {
    let path = PathBuf::from(which);
    let path = if path.exists() {
        path
    } else {
        options.out.join("baselines").join(format!("{which}.json"))
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a report: {e}", path.display()))
}

fn compare_reports(options: &Options, old: &str, new: &str) -> std::result::Result<String, String> {
    Ok(compare(
        &load(options, old)?,
        &load(options, new)?,
        options.threshold,
    ))
}

/// A latency case: a round trip to time, and the samples so far.
struct LatencyCase {
    name: String,
    /// What to measure; `None` for the cache-line floor.
    case: Option<Case>,
    size: usize,
    per_round: usize,
    samples: Vec<Duration>,
    /// Each round's median, in nanoseconds: what the intervals are drawn from.
    round_medians: Vec<f64>,
    baseline: Option<usize>,
    target: Option<&'static str>,
}

impl LatencyCase {
    /// Starts the case's peer, warms it up, takes this round's samples and stops the peer:
    /// only one peer runs at a time, so an idle busy-polling peer never competes with the
    /// case being measured.
    fn round(&mut self, peer_cpu: Option<usize>) -> Result<()> {
        let warmup = self.per_round / 10;
        let mut scratch = Vec::new();
        let first = self.samples.len();
        match self.case {
            None => {
                let mut shm = ShmPingPong::start(peer_cpu)?;
                sample_one_way(warmup, &mut scratch, || shm.round_trip())?;
                sample_one_way(self.per_round, &mut self.samples, || shm.round_trip())?;
            }
            Some(case) => {
                let mut pingpong = PingPong::start(case, self.size, peer_cpu)?;
                sample_one_way(warmup, &mut scratch, || pingpong.round_trip())?;
                sample_one_way(self.per_round, &mut self.samples, || pingpong.round_trip())?;
            }
        }
        self.round_medians
            .push(nanos_median(&self.samples[first..]));
        Ok(())
    }
}

/// The median of `samples` in nanoseconds.
fn nanos_median(samples: &[Duration]) -> f64 {
    let nanos: Vec<f64> = samples.iter().map(|d| d.as_nanos() as f64).collect();
    crate::report::median(&nanos)
}

/// A throughput case: what streams through which channel, and the rate of each round.
struct ThroughputCase {
    name: String,
    case: Case,
    size: usize,
    capacity: usize,
    rounds: Vec<f64>,
    /// Index among the throughput cases.
    baseline: Option<usize>,
    target: Option<&'static str>,
}

const KIB: usize = 1024;
/// The width of the progress bar, in characters.
const BAR: usize = 24;
const MIB: usize = 1024 * 1024;

/// The latency plan: for each size, each channel next to its floor.
fn latency_plan() -> Vec<(Case, usize, Option<Case>, Option<&'static str>)> {
    let mut plan = Vec::new();
    for size in [64, 4096, 64 * KIB] {
        let floor = Case::Pipe(Flavour::Raw);
        plan.push((floor, size, None, None));
        plan.push((Case::Pipe(Flavour::Pipe), size, Some(floor), Some("≤ 1.05")));
        plan.push((Case::Pipe(Flavour::Framed), size, Some(floor), None));
        let tokio = Case::Pipe(Flavour::Tokio);
        plan.push((tokio, size, None, None));
        plan.push((
            Case::Pipe(Flavour::Async),
            size,
            Some(tokio),
            Some("≤ 1.10"),
        ));
        if size == 64 {
            // What waiting in a selector costs (an epoll_wait before each read), and
            // what 63 more registered endpoints add.
            let plain = Case::Pipe(Flavour::Pipe);
            let one = Case::Pipe(Flavour::Select1);
            plan.push((one, size, Some(plain), None));
            plan.push((
                Case::Pipe(Flavour::Select64),
                size,
                Some(one),
                Some("≤ 1.05"),
            ));
        }
        for flavour in SocketFlavour::ALL {
            if size > flavour.max_message() || flavour.is_batch() {
                continue;
            }
            let floor = flavour.floor();
            if floor == flavour {
                plan.push((Case::Socket(flavour), size, None, None));
            } else {
                let target = if flavour.is_async() {
                    "≤ 1.10"
                } else {
                    "≤ 1.05"
                };
                plan.push((
                    Case::Socket(flavour),
                    size,
                    Some(Case::Socket(floor)),
                    Some(target),
                ));
            }
        }
        for (flavour, target) in [
            (ShmFlavour::RawRing, None),
            (ShmFlavour::Busy, Some("≤ 1.1")),
            (ShmFlavour::Spin, Some("≤ 1.1")),
            (ShmFlavour::RawFutex, None),
            (ShmFlavour::Blocking, Some("≤ 1.1")),
        ] {
            let floor = flavour.floor();
            let baseline = (floor != flavour).then_some(Case::Shm(floor));
            plan.push((
                Case::Shm(flavour),
                size,
                baseline,
                if size == 64 { target } else { None },
            ));
        }
        if size == 64 {
            // A poller's wake-up against the blocking channel's, and what 63 more
            // registered channels add.
            let blocking = Case::Shm(ShmFlavour::Blocking);
            let one = Case::Shm(ShmFlavour::Select1);
            plan.push((one, size, Some(blocking), Some("≤ 1.3")));
            plan.push((
                Case::Shm(ShmFlavour::Select64),
                size,
                Some(one),
                Some("≤ 1.05"),
            ));
            // The async channel's wake-up against the blocking channel's.
            let awaited = Case::Shm(ShmFlavour::Async);
            plan.push((awaited, size, Some(blocking), Some("≤ 1.3")));
        }
    }
    // Message queues hold at most 8 KiB messages by default.
    for size in [64, 4096, 8192] {
        for flavour in MqFlavour::ALL {
            let floor = flavour.floor();
            let (baseline, target) = if floor == flavour {
                (None, None)
            } else {
                (Some(Case::Mq(floor)), Some("≤ 1.05"))
            };
            plan.push((Case::Mq(flavour), size, baseline, target));
        }
    }
    // Signals carry at most an integer: one round trip each.
    for flavour in SigFlavour::ALL {
        let floor = flavour.floor();
        let (baseline, target) = if floor == flavour {
            (None, None)
        } else {
            (Some(Case::Sig(floor)), Some("≤ 1.05"))
        };
        plan.push((Case::Sig(flavour), 8, baseline, target));
    }
    // Semaphores carry no data: one ping-pong each, next to the same calls made raw.
    for flavour in SemFlavour::ALL {
        let floor = flavour.floor();
        let (baseline, target) = if floor == flavour {
            (None, None)
        } else {
            (Some(Case::Sem(floor)), Some("≤ 1.05"))
        };
        plan.push((Case::Sem(flavour), 8, baseline, target));
    }
    plan
}

/// One planned throughput case: (case, message size, pipe capacity, baseline case and
/// capacity, target).
/// The rows of `--peers`: each other crate (the baseline) and the nearest ipc-rs mechanism
/// on the same work, its ratio to that crate.
#[cfg(feature = "peers")]
mod peers {
    use crate::case::Case;
    use crate::channels::Flavour as ShmFlavour;
    use crate::peers::Flavour as PeerFlavour;
    use crate::sockets::Flavour as SocketFlavour;

    use super::Planned;

    /// Each crate and the ipc-rs mechanism compared with it.
    const PAIRS: [(PeerFlavour, Case); 3] = [
        (PeerFlavour::Iceoryx2, Case::Shm(ShmFlavour::Busy)),
        (
            PeerFlavour::IpcChannel,
            Case::Socket(SocketFlavour::Seqpacket),
        ),
        (
            PeerFlavour::Interprocess,
            Case::Socket(SocketFlavour::UdsStreamFramed),
        ),
    ];

    pub(super) fn latency_plan() -> Vec<(Case, usize, Option<Case>, Option<&'static str>)> {
        let mut plan = Vec::new();
        for size in [64, 4096] {
            for (peer, ours) in PAIRS {
                plan.push((Case::Peer(peer), size, None, None));
                plan.push((ours, size, Some(Case::Peer(peer)), None));
            }
        }
        plan
    }

    pub(super) fn throughput_plan() -> Vec<Planned> {
        let mut plan = Vec::new();
        for size in [4096, 64 * 1024] {
            for (peer, ours) in PAIRS {
                plan.push((Case::Peer(peer), size, 0, None, None));
                // The bar: the channel copies 64 KiB at least as fast as iceoryx2.
                let target =
                    (peer == PeerFlavour::Iceoryx2 && size == 64 * 1024).then_some("≥ 1.0");
                plan.push((ours, size, 0, Some((Case::Peer(peer), 0)), target));
            }
        }
        plan
    }
}

#[cfg(not(feature = "peers"))]
mod peers {
    pub(super) fn latency_plan() -> Vec<(
        super::Case,
        usize,
        Option<super::Case>,
        Option<&'static str>,
    )> {
        Vec::new()
    }

    pub(super) fn throughput_plan() -> Vec<super::Planned> {
        Vec::new()
    }
}

type Planned = (
    Case,
    usize,
    usize,
    Option<(Case, usize)>,
    Option<&'static str>,
);

/// The throughput plan.
fn throughput_plan() -> Vec<Planned> {
    let mut plan = Vec::new();
    for size in [4 * KIB, 64 * KIB, MIB] {
        let at_64k = |target| if size == 64 * KIB { Some(target) } else { None };
        let pipe = |f| Case::Pipe(f);
        plan.push((pipe(Flavour::Raw), size, 64 * KIB, None, None));
        plan.push((
            pipe(Flavour::Pipe),
            size,
            64 * KIB,
            Some((pipe(Flavour::Raw), 64 * KIB)),
            Some("≥ 0.95"),
        ));
        plan.push((
            pipe(Flavour::Framed),
            size,
            64 * KIB,
            Some((pipe(Flavour::Raw), 64 * KIB)),
            at_64k("≥ 0.90"),
        ));
        plan.push((pipe(Flavour::Tokio), size, 64 * KIB, None, None));
        plan.push((
            pipe(Flavour::Async),
            size,
            64 * KIB,
            Some((pipe(Flavour::Tokio), 64 * KIB)),
            Some("≥ 0.95"),
        ));
        plan.push((pipe(Flavour::Raw), size, MIB, None, None));
        plan.push((
            pipe(Flavour::Pipe),
            size,
            MIB,
            Some((pipe(Flavour::Raw), MIB)),
            Some("≥ 0.95"),
        ));
        plan.push((pipe(Flavour::RawVmsplice), size, MIB, None, None));
        plan.push((
            pipe(Flavour::Vmsplice),
            size,
            MIB,
            Some((pipe(Flavour::RawVmsplice), MIB)),
            at_64k("≥ 0.80"),
        ));
        for flavour in SocketFlavour::ALL {
            if size > flavour.max_message() {
                continue;
            }
            let floor = flavour.floor();
            let framed = matches!(
                flavour,
                SocketFlavour::UdsStreamFramed | SocketFlavour::TcpFramed
            );
            let target = if framed {
                at_64k("≥ 0.90")
            } else if flavour.is_batch() {
                // The gain over one message a call, which has no target.
                None
            } else {
                Some("≥ 0.95")
            };
            if floor == flavour {
                plan.push((Case::Socket(flavour), size, 0, None, None));
            } else {
                plan.push((
                    Case::Socket(flavour),
                    size,
                    0,
                    Some((Case::Socket(floor), 0)),
                    target,
                ));
            }
        }
        let copy_target = (size >= 4 * KIB).then_some("≥ 0.90");
        for (flavour, target) in [
            (ShmFlavour::RawRing, None),
            (ShmFlavour::Busy, copy_target),
            (ShmFlavour::Spin, copy_target),
            (ShmFlavour::Blocking, None),
            (ShmFlavour::RawRingZeroCopy, None),
            (ShmFlavour::BusyZeroCopy, Some("≥ 0.80")),
        ] {
            // A blocking channel streams through the same ring as the others, so in bulk it
            // is compared with the raw ring (its latency floor, a futex ping-pong, does not
            // stream).
            let floor = match flavour {
                ShmFlavour::Blocking => ShmFlavour::RawRing,
                _ => flavour.floor(),
            };
            let baseline = (floor != flavour).then_some((Case::Shm(floor), 0));
            plan.push((Case::Shm(flavour), size, 0, baseline, target));
        }
        if size == 4 * KIB {
            let baseline = Some((Case::Shm(ShmFlavour::Spin), 0));
            plan.push((Case::Shm(ShmFlavour::SpinBatch), size, 0, baseline, None));
        }
    }
    // Batches of small messages: one message a call and a batch a call, the gain (the 4 KiB
    // rows are in the loop above).
    for (single, batch) in [
        (SocketFlavour::Seqpacket, SocketFlavour::SeqpacketBatch),
        (SocketFlavour::Datagram, SocketFlavour::DatagramBatch),
    ] {
        plan.push((Case::Socket(single), 64, 0, None, None));
        let baseline = Some((Case::Socket(single), 0));
        plan.push((Case::Socket(batch), 64, 0, baseline, None));
    }
    plan.push((Case::Shm(ShmFlavour::Spin), 64, 0, None, None));
    let baseline = Some((Case::Shm(ShmFlavour::Spin), 0));
    plan.push((Case::Shm(ShmFlavour::SpinBatch), 64, 0, baseline, None));
    // Message queues: their largest default message, and a page.
    for size in [4 * KIB, 8 * KIB] {
        for flavour in MqFlavour::ALL {
            let floor = flavour.floor();
            let (baseline, target) = if floor == flavour {
                (None, None)
            } else {
                (Some((Case::Mq(floor), 0)), Some("≥ 0.95"))
            };
            plan.push((Case::Mq(flavour), size, 0, baseline, target));
        }
    }
    plan
}

fn label(case: Case, capacity: usize) -> String {
    if capacity == 0 {
        case.label().to_owned()
    } else {
        format!("{}, {} KiB pipe", case.label(), capacity / KIB)
    }
}

fn run(options: &Options) -> Result<Report> {
    let mut pinned = affinity::cpu_pair()?;
    let mut warning = None;
    if pinned.is_none() {
        warning = Some(
            "only one CPU is available: the two processes share it, so every latency is a \
             same-CPU hand-off and no figure here compares with a cross-core one"
                .to_owned(),
        );
    }
    // Read the machine before pinning, which would hide the other CPUs.
    let mut machine = Machine::detect(pinned, None, clock_overhead());
    if let Some((own, peer)) = pinned {
        // Pinning both CPUs is tried here first: a failure is reported, not hidden.
        let check = affinity::pin_to(peer).and_then(|()| affinity::pin_to(own));
        if let Err(err) = check {
            warning = Some(format!(
                "the processes could not be pinned to CPUs {own} and {peer} ({err}): they float, \
                 and the figures mix same-CPU and cross-core hand-offs"
            ));
            pinned = None;
        }
    }
    let peer_cpu = pinned.map(|(_, b)| b);
    machine.pinned = pinned;
    machine.warning.clone_from(&warning);
    if let Some(warning) = &warning {
        eprintln!("ipc-bench-runner: WARNING: {warning}");
    }
    let plan = if options.quick {
        Rounds::QUICK
    } else {
        Rounds::FULL
    };
    let Rounds {
        max: rounds,
        scale,
        bytes_per_round,
        ..
    } = plan;

    let mut lplan = latency_plan();
    let mut bplan = throughput_plan();
    if options.peers {
        lplan.extend(peers::latency_plan());
        bplan.extend(peers::throughput_plan());
    }
    let cases_plan = select(lplan, options, |p| p.0, |p| p.2);
    let mut latency = vec![LatencyCase {
        name: "shm spin ping-pong (floor)".into(),
        case: None,
        size: 8,
        per_round: 20_000 * scale,
        samples: Vec::new(),
        round_medians: Vec::new(),
        baseline: None,
        target: None,
    }];
    for &(case, size, baseline, target) in &cases_plan {
        let baseline = baseline
            .and_then(|floor| {
                cases_plan
                    .iter()
                    .position(|&(c, s, _, _)| c == floor && s == size)
            })
            .map(|i| i + 1);
        latency.push(LatencyCase {
            name: case.label().to_owned(),
            case: Some(case),
            size,
            per_round: 2_000 * scale,
            samples: Vec::new(),
            round_medians: Vec::new(),
            baseline,
            target,
        });
    }
    let tplan = select(bplan, options, |p| p.0, |p| p.3.map(|(floor, _)| floor));
    let mut bulk: Vec<ThroughputCase> = tplan
        .iter()
        .map(|&(case, size, capacity, baseline, target)| ThroughputCase {
            name: label(case, capacity),
            case,
            size,
            capacity,
            rounds: Vec::new(),
            baseline: baseline.and_then(|(floor, cap)| {
                tplan
                    .iter()
                    .position(|&(c, s, k, _, _)| c == floor && s == size && k == cap)
            }),
            target,
        })
        .collect();

    // Interleave every case round by round, so that a period in which the host runs the
    // two vCPUs slower affects every case alike.
    // In-process copies into and out of a shared mapping, 64 KiB at a time.
    let mut copies = CopyBench::new(64 * KIB)?;
    let mut copy_rates: Vec<(Copy, Vec<f64>)> =
        Copy::ALL.iter().map(|&c| (c, Vec::new())).collect();
    let copy_count = 2_000 * scale;
    // Uncontended semaphore and mutex operations in this process, in batches of 1000.
    let uncontended = Uncontended::new()?;
    let mut sem_ops: Vec<(SemFlavour, Vec<Duration>)> = SemFlavour::ALL
        .iter()
        .filter(|&&f| options.wants(Case::Sem(f)) || options.wants(Case::Sem(f.floor())))
        .map(|&f| (f, Vec::new()))
        .collect();
    let cases = latency.len() + bulk.len();
    let started = std::time::Instant::now();
    let progress = |round: usize, done: usize, what: &str, size: usize| {
        // One line, rewritten in place: what runs, and how far along the run is.
        // A quick run's end is its budget, or settled ratios, whichever comes first.
        let percent = match plan.budget {
            Some(budget) => {
                let spent = started.elapsed().as_millis() * 100 / budget.as_millis().max(1);
                usize::try_from(spent.min(99)).unwrap_or(99)
            }
            None => (round * cases + done) * 100 / (rounds * cases).max(1),
        };
        let filled = percent * BAR / 100;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR - filled));
        eprint!(
            "\r\x1b[2K  [{bar}] {percent:>3}% · round {}/{rounds} · case {}/{cases} · {:>4.0}s · {what} ({size} B)",
            round + 1,
            done + 1,
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::Write::flush(&mut std::io::stderr());
    };
    // Past the first rounds of a quick run, only the cases whose ratio is unsettled, and
    // the floors they are measured against, are measured again: the budget goes where the
    // noise is. A case left out is never taken up again, so that its rounds still pair one
    // for one with its floor's (ratios are taken round by round).
    let mut active = (vec![true; latency.len()], vec![true; bulk.len()]);
    let mut round = 0;
    while round < rounds {
        let round_started = std::time::Instant::now();
        for (case, rates) in &mut copy_rates {
            rates.push(copies.run(*case, copy_count)?);
        }
        for (flavour, samples) in &mut sem_ops {
            // Timed per hundred pairs: a pair takes a few nanoseconds, and whole
            // nanoseconds per pair would round ratios to 5%.
            for _ in 0..20 * scale {
                samples.push(uncontended.time(*flavour, 1000)? / 10);
            }
        }
        for (i, case) in latency.iter_mut().enumerate() {
            if !active.0[i] {
                continue;
            }
            progress(round, i, &case.name, case.size);
            case.round(peer_cpu)
                .map_err(|e| e.with_subject(format!("{} at {} bytes", case.name, case.size)))?;
        }
        let offset = latency.len();
        for (i, case) in bulk.iter_mut().enumerate() {
            if !active.1[i] {
                continue;
            }
            progress(round, offset + i, &case.name, case.size);
            let count = (bytes_per_round / case.size).max(16) as u64;
            let elapsed = throughput(case.case, case.size, case.capacity, count, peer_cpu)
                .map_err(|e| e.with_subject(format!("{} at {} bytes", case.name, case.size)))?;
            case.rounds
                .push((count as f64 * case.size as f64) / elapsed.as_secs_f64());
        }
        round += 1;
        // A quick run goes on while a ratio is unsettled and another round fits its budget.
        let Some(budget) = plan.budget else {
            continue;
        };
        if round < plan.min {
            continue;
        }
        let (rows, latency_row, bulk_row) =
            rows_of_cases(&latency, &bulk, &copy_rates, &sem_ops, scale);
        let report = Report {
            machine: machine.clone(),
            rows,
            quick: true,
        };
        let needed = still_needed(&report);
        let unsettled = report
            .rows
            .iter()
            .filter(|row| row.baseline.is_some() && !report.settled(row))
            .count();
        if unsettled == 0 || started.elapsed() + round_started.elapsed() > budget {
            break;
        }
        for (on, row) in active.0.iter_mut().zip(&latency_row) {
            *on &= row.is_some_and(|row| needed[row]);
        }
        for (on, &row) in active.1.iter_mut().zip(&bulk_row) {
            *on &= needed[row];
        }
    }

    eprintln!(
        "\r\x1b[2K  100% · {round} rounds of {cases} cases in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(Report {
        machine,
        rows: rows(&latency, &bulk, &copy_rates, &sem_ops, scale),
        quick: options.quick,
    })
}

/// Which rows another round must measure: those with an unsettled ratio, and the floors
/// they are measured against, and theirs.
fn still_needed(report: &Report) -> Vec<bool> {
    let mut needed: Vec<bool> = report
        .rows
        .iter()
        .map(|row| row.baseline.is_some() && !report.settled(row))
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (i, row) in report.rows.iter().enumerate() {
            if let Some(floor) = row.baseline.filter(|_| needed[i]) {
                if floor < needed.len() && !needed[floor] {
                    needed[floor] = true;
                    changed = true;
                }
            }
        }
    }
    needed
}

/// How many rounds a run takes, and how much each measures.
#[derive(Clone, Copy)]
struct Rounds {
    /// At least this many rounds.
    min: usize,
    /// At most this many.
    max: usize,
    /// With a budget, rounds past `min` are added while a ratio is unsettled and another
    /// round fits in it; without, `max` rounds are taken.
    budget: Option<Duration>,
    /// Samples per round, in units (latency cases take 2 000 a unit).
    scale: usize,
    /// What a throughput case moves per round.
    bytes_per_round: usize,
}

impl Rounds {
    /// `--quick`: small rounds, as many as settle the ratios in under two minutes (past
    /// the first three, only the unsettled cases and their floors, so many more fit).
    const QUICK: Rounds = Rounds {
        min: 3,
        max: 60,
        budget: Some(Duration::from_secs(110)),
        scale: 1,
        bytes_per_round: 24 * MIB,
    };
    /// A full run: nine large rounds.
    const FULL: Rounds = Rounds {
        min: 9,
        max: 9,
        budget: None,
        scale: 5,
        bytes_per_round: 256 * MIB,
    };
}

/// The report's rows from what the cases measured so far.
fn rows(
    latency: &[LatencyCase],
    bulk: &[ThroughputCase],
    copy_rates: &[(Copy, Vec<f64>)],
    sem_ops: &[(SemFlavour, Vec<Duration>)],
    scale: usize,
) -> Vec<Row> {
    rows_of_cases(latency, bulk, copy_rates, sem_ops, scale).0
}

/// The report's rows, and the row of each latency case (`None` before it has samples) and
/// of each throughput case.
fn rows_of_cases(
    latency: &[LatencyCase],
    bulk: &[ThroughputCase],
    copy_rates: &[(Copy, Vec<f64>)],
    sem_ops: &[(SemFlavour, Vec<Duration>)],
    scale: usize,
) -> (Vec<Row>, Vec<Option<usize>>, Vec<usize>) {
    let mut rows: Vec<Row> = Vec::new();
    let mut latency_row = Vec::with_capacity(latency.len());
    for case in latency {
        let Some(summary) = Summary::of(&mut case.samples.clone()) else {
            latency_row.push(None);
            continue;
        };
        latency_row.push(Some(rows.len()));
        rows.push(Row {
            case: case.name.clone(),
            size: case.size,
            metric: Metric::Latency(summary, case.round_medians.clone()),
            baseline: case.baseline,
            target: case.target,
        });
    }
    // Throughput rows follow the latency rows; one extra row compares the zero-copy path
    // with a plain pipe, so map each case to its row before resolving baselines.
    let mut row_of = Vec::with_capacity(bulk.len());
    let mut extra = Vec::new();
    for case in bulk {
        row_of.push(rows.len());
        rows.push(Row {
            case: case.name.clone(),
            size: case.size,
            metric: Metric::Throughput(case.rounds.clone()),
            baseline: None,
            target: case.target,
        });
        if case.case == Case::Pipe(Flavour::Vmsplice) && case.size == 64 * KIB {
            extra.push(rows.len());
            rows.push(Row {
                case: format!("{} vs plain pipe", case.name),
                size: case.size,
                metric: Metric::Throughput(case.rounds.clone()),
                baseline: None,
                target: Some("≥ 5"),
            });
        }
    }
    for (case, &row) in bulk.iter().zip(&row_of) {
        rows[row].baseline = case.baseline.map(|b| row_of[b]);
    }
    let plain_pipe_64k = bulk
        .iter()
        .position(|c| {
            c.case == Case::Pipe(Flavour::Pipe) && c.size == 64 * KIB && c.capacity == 64 * KIB
        })
        .map(|i| row_of[i]);
    for row in extra {
        rows[row].baseline = plain_pipe_64k;
    }
    let first_copy = rows.len();
    for (case, rates) in copy_rates {
        let floor = copy_rates
            .iter()
            .position(|(c, _)| *c == case.floor())
            .map(|i| first_copy + i);
        rows.push(Row {
            case: case.label().to_owned(),
            size: 64 * KIB,
            metric: Metric::Throughput(rates.clone()),
            baseline: if case.floor() == *case { None } else { floor },
            target: if case.floor() == *case {
                None
            } else {
                Some("≥ 0.90")
            },
        });
    }
    let first_op = rows.len();
    let measured: Vec<SemFlavour> = sem_ops.iter().map(|(f, _)| *f).collect();
    for (flavour, samples) in sem_ops {
        // Taken a round at a time (`20 * scale` a round), in order.
        let round_medians = samples.chunks(20 * scale).map(nanos_median).collect();
        let Some(summary) = Summary::of(&mut samples.clone()) else {
            continue;
        };
        let floor = flavour.floor();
        rows.push(Row {
            case: flavour.op_label().to_owned(),
            size: 0,
            metric: Metric::Latency(summary, round_medians),
            baseline: (floor != *flavour)
                .then(|| measured.iter().position(|&f| f == floor))
                .flatten()
                .map(|i| first_op + i),
            target: (floor != *flavour).then_some("≤ 1.05"),
        });
    }
    (rows, latency_row, row_of)
}
