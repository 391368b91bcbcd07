//! `ipc-bench-runner [--quick] [--out DIR]`: measures every case between two pinned
//! processes, prints the Markdown tables and writes `report.md` and `report.json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ipc_bench::floor::{ShmPingPong, clock_overhead, run_peer, sample_one_way};
use ipc_bench::pipes::{Flavour, PipePingPong, throughput};
use ipc_bench::report::{Machine, Metric, Report, Row};
use ipc_bench::stats::Summary;
use ipc_bench::{affinity, peer};
use ipc_core::Result;

const USAGE: &str = "usage: ipc-bench-runner [--quick] [--out DIR]

  --quick    fewer samples (well under a minute)
  --out DIR  where to write report.md and report.json (default: target/ipc-bench)";

struct Options {
    quick: bool,
    out: PathBuf,
}

fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options {
        quick: false,
        out: PathBuf::from("target/ipc-bench"),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--out" => options.out = args.next().ok_or("--out needs a directory")?.into(),
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
struct LatencyCase<'a> {
    name: String,
    size: usize,
    per_round: usize,
    round_trip: Box<dyn FnMut() -> Result<()> + 'a>,
    samples: Vec<Duration>,
    baseline: Option<usize>,
    target: Option<&'static str>,
}

/// A throughput case: what streams through which pipe, and the rate of each round.
struct ThroughputCase {
    name: String,
    flavour: Flavour,
    size: usize,
    capacity: usize,
    rounds: Vec<f64>,
    /// Index among the throughput cases.
    baseline: Option<usize>,
    target: Option<&'static str>,
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn latency_cases<'a>(
    shm: &'a mut ShmPingPong,
    pipes: &'a mut [(usize, Flavour, PipePingPong)],
    scale: usize,
) -> Vec<LatencyCase<'a>> {
    let mut cases = vec![LatencyCase {
        name: "shm spin ping-pong (floor)".into(),
        size: 8,
        per_round: 20_000 * scale,
        round_trip: Box::new(|| shm.round_trip()),
        samples: Vec::new(),
        baseline: None,
        target: None,
    }];
    let mut floor = 0;
    for (size, flavour, pingpong) in pipes.iter_mut() {
        let index = cases.len();
        let (baseline, target) = match flavour {
            Flavour::Raw => {
                floor = index;
                (None, None)
            }
            Flavour::Pipe => (Some(floor), Some("≤ 1.05")),
            _ => (Some(floor), None),
        };
        cases.push(LatencyCase {
            name: flavour.label().into(),
            size: *size,
            per_round: 2_000 * scale,
            round_trip: Box::new(|| pingpong.round_trip()),
            samples: Vec::new(),
            baseline,
            target,
        });
    }
    cases
}

fn throughput_cases() -> Vec<ThroughputCase> {
    let mut cases = Vec::new();
    for size in [4 * KIB, 64 * KIB, MIB] {
        let at_64k = |target| if size == 64 * KIB { Some(target) } else { None };
        let start = cases.len();
        // (flavour, pipe capacity, index of the baseline within this size's group, target)
        let plan = [
            (Flavour::Raw, 64 * KIB, None, None),
            (Flavour::Pipe, 64 * KIB, Some(0), Some("≥ 0.95")),
            (Flavour::Framed, 64 * KIB, Some(0), at_64k("≥ 0.90")),
            (Flavour::Raw, MIB, None, None),
            (Flavour::Pipe, MIB, Some(3), Some("≥ 0.95")),
            (Flavour::RawVmsplice, MIB, None, None),
            (Flavour::Vmsplice, MIB, Some(5), at_64k("≥ 0.80")),
        ];
        for (flavour, capacity, baseline, target) in plan {
            cases.push(ThroughputCase {
                name: format!("{}, {} KiB pipe", flavour.label(), capacity / KIB),
                flavour,
                size,
                capacity,
                rounds: Vec::new(),
                baseline: baseline.map(|b| start + b),
                target,
            });
        }
    }
    cases
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
        (7, 5, 256 * MIB)
    };

    let mut shm = ShmPingPong::start(peer_cpu)?;
    let mut pipes = Vec::new();
    for size in [64, 4096] {
        for flavour in [Flavour::Raw, Flavour::Pipe, Flavour::Framed] {
            pipes.push((size, flavour, PipePingPong::start(size, flavour, peer_cpu)?));
        }
    }
    let mut latency = latency_cases(&mut shm, &mut pipes, scale);
    let mut bulk = throughput_cases();

    // Warm up, then interleave every case round by round, so that a period in which the
    // host runs the two vCPUs slower affects every case alike.
    for case in &mut latency {
        let mut warmup = Vec::new();
        sample_one_way(case.per_round / 10, &mut warmup, &mut case.round_trip)?;
    }
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for case in &mut latency {
            sample_one_way(case.per_round, &mut case.samples, &mut case.round_trip)?;
        }
        for case in &mut bulk {
            let count = (bytes_per_round / case.size).max(16) as u64;
            let elapsed = throughput(case.flavour, case.size, case.capacity, count, peer_cpu)?;
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
        if case.flavour == Flavour::Vmsplice && case.size == 64 * KIB {
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
        .position(|c| c.flavour == Flavour::Pipe && c.size == 64 * KIB && c.capacity == 64 * KIB)
        .map(|i| row_of[i]);
    for row in extra {
        rows[row].baseline = plain_pipe_64k;
    }
    Ok(Report {
        machine,
        rows,
        quick: options.quick,
    })
}
