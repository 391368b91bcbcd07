//! `ipc-bench-runner [--quick] [--out DIR]`: measures every case between two pinned
//! processes, prints the Markdown tables and writes `report.md` and `report.json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ipc_bench::channels::Flavour as ShmFlavour;
use ipc_bench::floor::{ShmPingPong, clock_overhead, run_peer, sample_one_way};
use ipc_bench::pipes::Flavour;
use ipc_bench::queues::Flavour as MqFlavour;
use ipc_bench::report::{Machine, Metric, Report, Row};
use ipc_bench::sems::{Flavour as SemFlavour, Uncontended};
use ipc_bench::shm::{Copy, CopyBench};
use ipc_bench::signals::Flavour as SigFlavour;
use ipc_bench::sockets::Flavour as SocketFlavour;
use ipc_bench::stats::Summary;
use ipc_bench::transport::{Case, PingPong, throughput};
use ipc_bench::{affinity, peer};
use ipc_core::Result;

const USAGE: &str = "usage: ipc-bench-runner [--quick] [--out DIR]

  --quick    fewer samples (well under a minute)
  --out DIR  where to write report.md and report.json (default: target/ipc-bench)
  --only S   only the cases whose name contains S (such as `shm:` or `socket:tcp`),
             with their floors; for working on one mechanism";

struct Options {
    quick: bool,
    out: PathBuf,
    only: Option<String>,
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
        out: PathBuf::from("target/ipc-bench"),
        only: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--out" => options.out = args.next().ok_or("--out needs a directory")?.into(),
            "--only" => options.only = Some(args.next().ok_or("--only needs a name")?.clone()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
        Err(message) => {
            if !message.is_empty() {
                eprintln!("ipc-bench-runner: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(&options) {
        Ok(report) => {
            print!("{}", report.to_markdown());
            match report.write(&options.out) {
                Ok(()) => {
                    println!("\nwritten to {}/report.{{md,json}}", options.out.display());
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

/// A latency case: a round trip to time, and the samples so far.
struct LatencyCase {
    name: String,
    /// What to measure; `None` for the cache-line floor.
    case: Option<Case>,
    size: usize,
    per_round: usize,
    samples: Vec<Duration>,
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
        match self.case {
            None => {
                let mut shm = ShmPingPong::start(peer_cpu)?;
                sample_one_way(warmup, &mut scratch, || shm.round_trip())?;
                sample_one_way(self.per_round, &mut self.samples, || shm.round_trip())
            }
            Some(case) => {
                let mut pingpong = PingPong::start(case, self.size, peer_cpu)?;
                sample_one_way(warmup, &mut scratch, || pingpong.round_trip())?;
                sample_one_way(self.per_round, &mut self.samples, || pingpong.round_trip())
            }
        }
    }
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
const MIB: usize = 1024 * 1024;

/// The latency plan: for each size, each channel next to its floor.
fn latency_plan() -> Vec<(Case, usize, Option<Case>, Option<&'static str>)> {
    let mut plan = Vec::new();
    for size in [64, 4096] {
        let floor = Case::Pipe(Flavour::Raw);
        plan.push((floor, size, None, None));
        plan.push((Case::Pipe(Flavour::Pipe), size, Some(floor), Some("≤ 1.05")));
        plan.push((Case::Pipe(Flavour::Framed), size, Some(floor), None));
        for flavour in SocketFlavour::ALL {
            let floor = flavour.floor();
            if floor == flavour {
                plan.push((Case::Socket(flavour), size, None, None));
            } else {
                plan.push((
                    Case::Socket(flavour),
                    size,
                    Some(Case::Socket(floor)),
                    Some("≤ 1.05"),
                ));
            }
        }
        for (flavour, target) in [
            (ShmFlavour::RawRing, None),
            (ShmFlavour::Busy, Some("≤ 1.2")),
            (ShmFlavour::Spin, Some("≤ 1.2")),
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
        let big = size >= 64 * KIB;
        for (flavour, target) in [
            (ShmFlavour::RawRing, None),
            (ShmFlavour::Busy, if big { Some("≥ 0.90") } else { None }),
            (ShmFlavour::Spin, if big { Some("≥ 0.90") } else { None }),
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
    }
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
    let pinned = affinity::cpu_pair()?;
    let peer_cpu = pinned.map(|(_, b)| b);
    // Read the machine before pinning, which would hide the other CPUs.
    let machine = Machine::detect(pinned, clock_overhead());
    if let Some((own, _)) = pinned {
        affinity::pin_to(own)?;
    }
    let (rounds, scale, bytes_per_round) = if options.quick {
        (3, 1, 48 * MIB)
    } else {
        (9, 5, 256 * MIB)
    };

    let plan = select(latency_plan(), options, |p| p.0, |p| p.2);
    let mut latency = vec![LatencyCase {
        name: "shm spin ping-pong (floor)".into(),
        case: None,
        size: 8,
        per_round: 20_000 * scale,
        samples: Vec::new(),
        baseline: None,
        target: None,
    }];
    for &(case, size, baseline, target) in &plan {
        let baseline = baseline
            .and_then(|floor| {
                plan.iter()
                    .position(|&(c, s, _, _)| c == floor && s == size)
            })
            .map(|i| i + 1);
        latency.push(LatencyCase {
            name: case.label().to_owned(),
            case: Some(case),
            size,
            per_round: 2_000 * scale,
            samples: Vec::new(),
            baseline,
            target,
        });
    }
    let tplan = select(
        throughput_plan(),
        options,
        |p| p.0,
        |p| p.3.map(|(floor, _)| floor),
    );
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
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
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
        for case in &mut latency {
            case.round(peer_cpu)
                .map_err(|e| e.with_subject(format!("{} at {} bytes", case.name, case.size)))?;
        }
        for case in &mut bulk {
            let count = (bytes_per_round / case.size).max(16) as u64;
            let elapsed = throughput(case.case, case.size, case.capacity, count, peer_cpu)
                .map_err(|e| e.with_subject(format!("{} at {} bytes", case.name, case.size)))?;
            case.rounds
                .push((count as f64 * case.size as f64) / elapsed.as_secs_f64());
        }
    }

    let mut rows: Vec<Row> = latency
        .into_iter()
        .filter_map(|mut case| {
            Some(Row {
                case: case.name,
                size: case.size,
                metric: Metric::Latency(Summary::of(&mut case.samples)?),
                baseline: case.baseline,
                target: case.target,
            })
        })
        .collect();
    // Throughput rows follow the latency rows; one extra row compares the zero-copy path
    // with a plain pipe, so map each case to its row before resolving baselines.
    let mut row_of = Vec::with_capacity(bulk.len());
    let mut extra = Vec::new();
    for case in &bulk {
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
    for (case, rates) in &copy_rates {
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
    for (flavour, samples) in &mut sem_ops {
        let Some(summary) = Summary::of(samples) else {
            continue;
        };
        let floor = flavour.floor();
        rows.push(Row {
            case: flavour.op_label().to_owned(),
            size: 0,
            metric: Metric::Latency(summary),
            baseline: (floor != *flavour)
                .then(|| measured.iter().position(|&f| f == floor))
                .flatten()
                .map(|i| first_op + i),
            target: (floor != *flavour).then_some("≤ 1.05"),
        });
    }
    Ok(Report {
        machine,
        rows,
        quick: options.quick,
    })
}
