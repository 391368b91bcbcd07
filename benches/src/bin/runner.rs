//! `ipc-bench-runner [--quick] [--out DIR]`: measures every case between two pinned
//! processes, prints the Markdown table and writes `report.md` and `report.json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ipc_bench::floor::{PipePingPong, ShmPingPong, clock_overhead, run_peer, sample_one_way};
use ipc_bench::report::{Machine, Report, Row};
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

/// A case being measured: a name, a size, a round trip, the samples so far.
struct Case<'a> {
    name: &'static str,
    size: usize,
    per_round: usize,
    round_trip: Box<dyn FnMut() -> Result<()> + 'a>,
    samples: Vec<Duration>,
}

fn run(options: &Options) -> Result<Report> {
    let pinned = affinity::cpu_pair()?;
    let (own_cpu, peer_cpu) = match pinned {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    // Read the machine before pinning, which would hide the other CPUs.
    let machine = Machine::detect(pinned, clock_overhead());
    if let Some(cpu) = own_cpu {
        affinity::pin_to(cpu)?;
    }
    let (rounds, scale) = if options.quick { (5, 2) } else { (10, 10) };

    let mut shm = ShmPingPong::start(peer_cpu)?;
    let mut pipe_small = PipePingPong::start(64, peer_cpu)?;
    let mut pipe_page = PipePingPong::start(4096, peer_cpu)?;
    let mut cases = vec![
        Case {
            name: "shm spin ping-pong (floor)",
            size: 8,
            per_round: 20_000 * scale,
            round_trip: Box::new(|| shm.round_trip()),
            samples: Vec::new(),
        },
        Case {
            name: "pipe read/write (libc floor)",
            size: 64,
            per_round: 2_000 * scale,
            round_trip: Box::new(|| pipe_small.round_trip()),
            samples: Vec::new(),
        },
        Case {
            name: "pipe read/write (libc floor)",
            size: 4096,
            per_round: 2_000 * scale,
            round_trip: Box::new(|| pipe_page.round_trip()),
            samples: Vec::new(),
        },
    ];
    // Warm up every case, then interleave them round by round, so that a period in which
    // the host runs the two vCPUs slower affects every case alike.
    for case in &mut cases {
        let mut warmup = Vec::new();
        sample_one_way(case.per_round / 10, &mut warmup, &mut case.round_trip)?;
    }
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for case in &mut cases {
            sample_one_way(case.per_round, &mut case.samples, &mut case.round_trip)?;
        }
    }
    let rows = cases
        .into_iter()
        .filter_map(|mut case| {
            Some(Row {
                case: case.name.to_owned(),
                size: case.size,
                latency: Summary::of(&mut case.samples)?,
                baseline: None,
            })
        })
        .collect();
    Ok(Report {
        machine,
        rows,
        quick: options.quick,
    })
}
