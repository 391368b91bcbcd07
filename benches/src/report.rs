//! The comparison report: Markdown tables for people, JSON for tools.

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::Summary;

/// What a case measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// One-way latency statistics of every sample (lower is better), and the median
    /// latency of each round in nanoseconds.
    Latency(Summary, Vec<f64>),
    /// One-way throughput in bytes per second, one figure per round (higher is better).
    Throughput(Vec<f64>),
}

impl Metric {
    /// The figure ratios are taken of: the median latency in nanoseconds, or the median
    /// throughput.
    pub fn central(&self) -> f64 {
        match self {
            Metric::Latency(s, _) => s.median.as_nanos() as f64,
            Metric::Throughput(rounds) => median(rounds),
        }
    }

    /// Each round's figure: its median latency, or its throughput.
    pub fn rounds(&self) -> &[f64] {
        match self {
            Metric::Latency(_, rounds) | Metric::Throughput(rounds) => rounds,
        }
    }
}

/// How wide (against the median) an interval may be for its row to be ranked: wider, the
/// rounds disagreed too much for the order of two mechanisms to mean anything.
pub const SETTLED_WIDTH: f64 = 0.2;

/// Whether `interval` is narrow enough around `central`.
fn narrow(interval: Option<(f64, f64)>, central: f64) -> bool {
    interval.is_none_or(|(lo, hi)| central > 0.0 && (hi - lo) / central <= SETTLED_WIDTH)
}

/// The median of `values` (the mean of the middle two for an even count); 0 if empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured, such as `"shm spin ping-pong (floor)"`.
    pub case: String,
    /// Message size in bytes.
    pub size: usize,
    /// The measurement.
    pub metric: Metric,
    /// The index of the row this one is compared with (its floor), if any.
    pub baseline: Option<usize>,
    /// The target for the ratio to the baseline, as text (`"≥ 0.95"`), if there is one.
    pub target: Option<&'static str>,
}

/// Facts about the machine and the run, recorded next to the numbers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// CPUs online on the machine.
    pub cpus_online: usize,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The frequency governor of CPU 0, if the kernel exposes one (virtual machines
    /// often do not).
    pub governor: Option<String>,
    /// The hypervisor, if this is a virtual machine (`hypervisor` CPU flag; vendor from
    /// DMI when readable).
    pub hypervisor: Option<String>,
    /// `rustc --version`.
    pub rust: String,
    /// The git commit measured (`git rev-parse --short HEAD`), with `-dirty` for local
    /// changes.
    pub commit: String,
    /// The CPUs of the two processes, or `None` if they could not be pinned apart.
    pub pinned: Option<(usize, usize)>,
    /// Why the figures may mislead (a single CPU, a failed pinning), if they may.
    pub warning: Option<String>,
    /// The cost of one clock read in nanoseconds, included twice in every timed round trip.
    pub clock_overhead_ns: u64,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl Machine {
    /// Reads the machine facts; `pinned`, `warning` and `clock_overhead` come from the
    /// runner.
    pub fn detect(
        pinned: Option<(usize, usize)>,
        warning: Option<String>,
        clock_overhead: Duration,
    ) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let cpus_online = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let virtualised = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
        let hypervisor = virtualised.then(|| {
            read_trimmed("/sys/class/dmi/id/sys_vendor")
                .or_else(|| read_trimmed("/sys/hypervisor/type"))
                .unwrap_or_else(|| "a hypervisor".to_owned())
        });
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpus = crate::affinity::allowed_cpus()
            .map(|c| c.len())
            .unwrap_or(0);
        let commit = command_line("git", &["rev-parse", "--short=12", "HEAD"]).map_or_else(
            || "unknown".to_owned(),
            |commit| {
                let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"])
                    .is_some();
                if dirty {
                    format!("{commit}-dirty")
                } else {
                    commit
                }
            },
        );
        Machine {
            cpu_model,
            cpus,
            cpus_online,
            kernel,
            governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            hypervisor,
            rust: command_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
            commit,
            pinned,
            warning,
            clock_overhead_ns: u64::try_from(clock_overhead.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The measured cases, in the order run.
    pub rows: Vec<Row>,
    /// True for a `--quick` run (fewer samples).
    pub quick: bool,
}

/// The ratio of `row` to `base` in each round both were measured in.
fn round_ratios(row: &Row, base: &Row) -> Vec<f64> {
    row.metric
        .rounds()
        .iter()
        .zip(base.metric.rounds())
        .filter(|(_, base)| **base > 0.0)
        .map(|(ours, base)| ours / base)
        .collect()
}

fn ns(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1000.0)
    } else {
        format!("{ns} ns")
    }
}

fn rate(bytes_per_sec: f64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if bytes_per_sec >= GIB {
        format!("{:.2} GiB/s", bytes_per_sec / GIB)
    } else {
        format!("{:.0} MiB/s", bytes_per_sec / MIB)
    }
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

impl Report {
    /// A row's ratio to its baseline (latency: lower is better; throughput: higher is
    /// better): the median of the per-round ratios, the same statistic its
    /// [`ratio_interval`](Report::ratio_interval) is of, so that the two always agree (the
    /// ratio of the two medians could fall outside that interval on a skewed row); the
    /// ratio of the medians for rows recorded without rounds.
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        let base = self.rows.get(row.baseline?)?;
        let ratios = round_ratios(row, base);
        if !ratios.is_empty() {
            return Some(median(&ratios));
        }
        let base = base.metric.central();
        (base > 0.0).then(|| row.metric.central() / base)
    }

    /// A 95% interval of the ratio: of the median of the per-round ratios (each round
    /// measures a case and its baseline minutes apart at most, which the machine's drift
    /// between rounds does not).
    pub fn ratio_interval(&self, row: &Row) -> Option<(f64, f64)> {
        let base = self.rows.get(row.baseline?)?;
        crate::stats::median_interval(&round_ratios(row, base))
    }

    /// Whether the row's rounds agree enough to rank it and to read its ratio: its own
    /// interval and its ratio's are at most [`SETTLED_WIDTH`] of their medians wide.
    pub fn settled(&self, row: &Row) -> bool {
        let own = crate::stats::median_interval(row.metric.rounds());
        narrow(own, median(row.metric.rounds()))
            && self
                .ratio(row)
                .is_none_or(|ratio| narrow(self.ratio_interval(row), ratio))
    }

    fn ratio_cell(&self, row: &Row) -> String {
        match (self.ratio(row), row.baseline.and_then(|b| self.rows.get(b))) {
            (Some(r), Some(base)) => {
                let interval = self
                    .ratio_interval(row)
                    .map(|(lo, hi)| format!(" ({lo:.2}–{hi:.2})"))
                    .unwrap_or_default();
                let unsettled = if self.settled(row) { "" } else { ", unsettled" };
                format!("{r:.2}×{interval} {}{unsettled}", floor_name(&base.case))
            }
            _ => "floor".to_owned(),
        }
    }

    fn header(&self, out: &mut String) {
        let m = &self.machine;
        let quick = if self.quick { " (quick)" } else { "" };
        let _ = writeln!(out, "## ipc-rs benchmark{quick}\n");
        if let Some(warning) = &m.warning {
            let _ = writeln!(out, "> **Warning: {warning}**\n");
        }
        let _ = writeln!(
            out,
            "- CPU: {} ({} of {} CPUs available)",
            m.cpu_model, m.cpus, m.cpus_online
        );
        let machine_kind = m.hypervisor.as_ref().map_or_else(
            || "bare metal or undetected".to_owned(),
            |h| format!("virtual machine ({h})"),
        );
        let _ = writeln!(
            out,
            "- kernel {}, {machine_kind}, governor {}",
            m.kernel,
            m.governor.as_deref().unwrap_or("not exposed")
        );
        let _ = writeln!(out, "- {}, commit {}", m.rust, m.commit);
        let _ = match m.pinned {
            Some((a, b)) => writeln!(out, "- two processes pinned to CPU {a} and CPU {b}"),
            None => writeln!(out, "- not pinned apart: the two processes may share a CPU"),
        };
        let _ = writeln!(
            out,
            "- latency: one-way = round trip / 2, timed per round trip, each including two clock reads of {}",
            ns(Duration::from_nanos(m.clock_overhead_ns))
        );
        let _ = writeln!(
            out,
            "- throughput: one process streams numbered messages, the other checks every number; rounds interleaved with the other cases\n"
        );
    }

    /// The rows of mechanisms (not floors) measured at `size`, best first.
    fn ranked(&self, latency: bool, size: usize) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.baseline.is_some() && r.size == size)
            // Mechanisms between processes only: not the in-process copies, nor the
            // extra rows that compare one mechanism with another or with another crate
            // (those have a section of their own: each mechanism is ranked once).
            .filter(|r| !r.case.contains("SharedMemory::") && !r.case.contains(" vs "))
            .filter(|r| !self.against_peer(r))
            .filter(|r| matches!(r.metric, Metric::Latency(..)) == latency)
            .collect();
        // Settled rows first, in order; the unsettled after them, unranked.
        rows.sort_by(|a, b| {
            let order = self.settled(b).cmp(&self.settled(a));
            let (a, b) = (a.metric.central(), b.metric.central());
            order.then(if latency {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            })
        });
        rows
    }

    /// Whether `row` is measured against another crate's mechanism (`--peers`) rather
    /// than against a floor.
    fn against_peer(&self, row: &Row) -> bool {
        row.baseline
            .and_then(|b| self.rows.get(b))
            .is_some_and(|base| base.case.starts_with(PEER_PREFIX))
    }

    /// The rows measured against other crates (`--peers`), as a table of their own.
    fn peers(&self, out: &mut String) {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| self.against_peer(r)).collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### Against other crates\n\n\
             Each ipc-rs mechanism beside the nearest one of another crate, on the same work in \
             the same run (`--peers`): a latency ratio below 1 and a throughput ratio above 1 \
             favour ipc-rs.\n\n\
             | ipc-rs | other crate | message | what | ipc-rs | other crate | ipc-rs ÷ other |\n\
             |---|---|---:|---|---:|---:|---:|"
        );
        for row in rows {
            let Some(base) = row.baseline.and_then(|b| self.rows.get(b)) else {
                continue;
            };
            let (what, ours, theirs) = match (&row.metric, &base.metric) {
                (Metric::Latency(l, _), Metric::Latency(b, _)) => {
                    ("latency, median", ns(l.median), ns(b.median))
                }
                (Metric::Throughput(r), Metric::Throughput(b)) => {
                    ("throughput", rate(median(r)), rate(median(b)))
                }
                _ => continue,
            };
            let ratio = self.ratio(row).map_or_else(String::new, |r| {
                let interval = self
                    .ratio_interval(row)
                    .map(|(lo, hi)| format!(" ({lo:.2}–{hi:.2})"))
                    .unwrap_or_default();
                let unsettled = if self.settled(row) { "" } else { ", unsettled" };
                format!("{r:.2}×{interval}{unsettled}")
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {what} | {ours} | {theirs} | {ratio} |",
                row.case,
                base.case.trim_start_matches(PEER_PREFIX).trim(),
                size(row.size),
            );
        }
        let _ = writeln!(out);
    }

    /// A ranked row's rank, or "–" for an unsettled one.
    fn rank(&self, row: &Row, index: usize) -> String {
        if self.settled(row) {
            (index + 1).to_string()
        } else {
            "–".to_owned()
        }
    }

    fn summary(&self, out: &mut String) {
        let fast = self.ranked(true, 64);
        let bulk = self.ranked(false, 64 * 1024);
        // The highlights name settled rows only.
        let settled_fast: Vec<&Row> = fast.iter().copied().filter(|r| self.settled(r)).collect();
        let settled_bulk: Vec<&Row> = bulk.iter().copied().filter(|r| self.settled(r)).collect();
        if fast.is_empty() && bulk.is_empty() {
            return;
        }
        let _ = writeln!(out, "### Which mechanism should I use?\n");
        let is_spinning = |r: &&Row| {
            r.case.contains("busy") || r.case.contains("spin") || r.case.contains("hand-off")
        };
        if let Some(best) = settled_fast.first() {
            let how = if best.case.contains("spin-then-park") {
                "It spins for a while (50 µs by default) before it sleeps."
            } else {
                "It keeps a CPU busy while it waits."
            };
            let _ = writeln!(
                out,
                "- **Lowest latency**: {} — {} one-way for 64 B (p99 {}). {how}",
                best.case,
                ns(lat(best).median),
                ns(lat(best).p99)
            );
        }
        if let Some(sleeping) = settled_fast.iter().find(|r| !is_spinning(r)) {
            let _ = writeln!(
                out,
                "- **Lowest latency for a peer that sleeps** (no CPU burnt while idle): {} — {} one-way; every mechanism that wakes a sleeping process costs about this much here.",
                sleeping.case,
                ns(lat(sleeping).median)
            );
        }
        if let (Some(best), Some(sleeping)) = (
            settled_fast.first(),
            settled_fast.iter().find(|r| !is_spinning(r)),
        ) {
            let factor =
                lat(sleeping).median.as_secs_f64() / lat(best).median.as_secs_f64().max(1e-12);
            let _ = writeln!(
                out,
                "- Spinning before sleeping (shared memory, spin-then-park) is worth it when messages come closer together than a wake-up: here that is a factor of {factor:.0}."
            );
        }
        let copying: Vec<&&Row> = settled_bulk
            .iter()
            .filter(|r| !r.case.contains("zero-copy"))
            .collect();
        if let Some(best) = copying.first() {
            let _ = writeln!(
                out,
                "- **Highest throughput copying 64 KiB messages**: {} — {}.",
                best.case,
                rate(best.metric.central())
            );
        }
        if let Some(kernel) = copying.iter().find(|r| !r.case.starts_with("shm")) {
            let _ = writeln!(
                out,
                "- **Highest throughput through the kernel** (no shared memory to manage): {} — {}.",
                kernel.case,
                rate(kernel.metric.central())
            );
        }
        if let Some(zero) = settled_bulk.iter().find(|r| r.case.contains("zero-copy")) {
            let _ = writeln!(
                out,
                "- **Zero-copy** (written and read in place): {} — {:.1} M messages/s of 64 KiB.",
                zero.case,
                zero.metric.central() / 65536.0 / 1e6
            );
        }
        if settled_fast.is_empty() && settled_bulk.is_empty() {
            let _ = writeln!(
                out,
                "No row settled in this run (every one's rounds or ratio varied by more than 20%: the machine was busy, or the host moved the vCPUs), so none is recommended: run again on a quieter machine, or with more rounds."
            );
        }
        let _ = writeln!(
            out,
            "\n### Ranked: one-way latency, 64 B\n\n| rank | mechanism | median | p99 | p99.9 | × its floor |\n|---:|---|---:|---:|---:|---:|"
        );
        for (i, row) in fast.iter().enumerate() {
            let l = lat(row);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                self.rank(row, i),
                row.case,
                ns(l.median),
                ns(l.p99),
                ns(l.p999),
                self.ratio_cell(row)
            );
        }
        if !bulk.is_empty() {
            let _ = writeln!(
                out,
                "\n### Ranked: one-way throughput, 64 KiB messages\n\n| rank | mechanism | median | slowest round | × its floor |\n|---:|---|---:|---:|---:|"
            );
            for (i, row) in bulk.iter().enumerate() {
                if let Metric::Throughput(rounds) = &row.metric {
                    let slowest = rounds.iter().copied().fold(f64::INFINITY, f64::min);
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} |",
                        self.rank(row, i),
                        row.case,
                        rate(median(rounds)),
                        rate(slowest),
                        self.ratio_cell(row)
                    );
                }
            }
        }
        let _ = writeln!(out);
    }

    /// The report as Markdown: the machine, a summary with rankings, then every latency
    /// and throughput figure with its ratio to its floor, and how to read them.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.summary(&mut out);
        self.peers(&mut out);
        let _ = writeln!(out, "### One-way latency, every case\n");
        let _ = writeln!(
            out,
            "| case | size | median | p99 | p99.9 | samples | × baseline | target |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            if let Metric::Latency(l, _) = &row.metric {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.case,
                    size(row.size),
                    ns(l.median),
                    ns(l.p99),
                    ns(l.p999),
                    l.samples,
                    self.ratio_cell(row),
                    row.target.unwrap_or("")
                );
            }
        }
        let throughput: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| matches!(r.metric, Metric::Throughput(_)))
            .collect();
        if !throughput.is_empty() {
            let _ = writeln!(out, "\n### One-way throughput, every case\n");
            let _ = writeln!(
                out,
                "| case | message | median | slowest round | rounds | × baseline | target |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
            for row in throughput {
                if let Metric::Throughput(rounds) = &row.metric {
                    let slowest = rounds.iter().copied().fold(f64::INFINITY, f64::min);
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        row.case,
                        size(row.size),
                        rate(median(rounds)),
                        rate(slowest),
                        rounds.len(),
                        self.ratio_cell(row),
                        row.target.unwrap_or("")
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\n### How to read it\n\n\
             - Every mechanism is measured next to its *floor*: the same operation written with raw \
             system calls (or a minimal ring, for shared memory) in the same run. The ratio to the floor \
             is the figure that carries from machine to machine; the absolute numbers depend on the CPU \
             and, on a virtual machine, on how the host schedules the two vCPUs (runs can differ by 2×).\n\
             - Latency is one-way (half a round trip); p99 and p99.9 show the tail a user will meet.\n\
             - Throughput is the median of interleaved rounds; the slowest round shows the spread.\n\
             - A ratio's interval (in brackets) is a 95% bootstrap interval of the median of its per-round \
             ratios. A row whose own rounds or ratio vary by more than 20% of the median is *unsettled*: \
             it is listed, not ranked, and its ratio says little; run again on a quieter machine.\n\
             - A *target* is the project's promise for that ratio (ARCHITECTURE.md, Measuring).\n\
             - `cargo xtask bench --save NAME` keeps this run; `--compare OLD NEW` shows what changed."
        );
        out
    }

    /// The report as JSON: every figure (latencies in nanoseconds, throughput in bytes per
    /// second) and the machine.
    pub fn to_json(&self) -> String {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let (latency, throughput) = match &row.metric {
                    Metric::Latency(l, _) => (
                        Some(JsonLatency {
                            median_ns: nanos(l.median),
                            p99_ns: nanos(l.p99),
                            p999_ns: nanos(l.p999),
                            min_ns: nanos(l.min),
                            samples: l.samples,
                        }),
                        None,
                    ),
                    Metric::Throughput(rounds) => (
                        None,
                        Some(JsonThroughput {
                            bytes_per_sec_median: median(rounds),
                            bytes_per_sec_rounds: rounds.clone(),
                        }),
                    ),
                };
                JsonRow {
                    case: row.case.clone(),
                    size: row.size,
                    latency,
                    throughput,
                    baseline: row.baseline,
                    ratio: self.ratio(row),
                    ratio_interval: self.ratio_interval(row).map(|(lo, hi)| [lo, hi]),
                    settled: self.settled(row),
                    target: row.target.map(str::to_owned),
                }
            })
            .collect();
        let report = JsonReport {
            quick: self.quick,
            machine: self.machine.clone(),
            rows,
        };
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    }
}

/// How the rows of other crates' mechanisms (`--peers`) begin (`peers.rs` names them).
pub(crate) const PEER_PREFIX: &str = "peer:";

fn lat(row: &Row) -> &Summary {
    match &row.metric {
        Metric::Latency(l, _) => l,
        Metric::Throughput(_) => unreachable!("a latency row"),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The name of a floor row, for the ratio column: its label without "(floor)".
fn floor_name(case: &str) -> &str {
    case.strip_suffix(" (floor)").unwrap_or(case)
}

/// `report.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JsonReport {
    /// A `--quick` run.
    pub quick: bool,
    /// The machine and the run.
    pub machine: Machine,
    /// Every figure.
    pub rows: Vec<JsonRow>,
}

/// One row of `report.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JsonRow {
    /// The case.
    pub case: String,
    /// Message size in bytes.
    pub size: usize,
    /// Latency figures, for a latency row.
    pub latency: Option<JsonLatency>,
    /// Throughput figures, for a throughput row.
    pub throughput: Option<JsonThroughput>,
    /// The index of the floor row.
    pub baseline: Option<usize>,
    /// The ratio to the floor.
    pub ratio: Option<f64>,
    /// A 95% interval of the ratio (a bootstrap over the interleaved rounds).
    #[serde(default)]
    pub ratio_interval: Option<[f64; 2]>,
    /// Whether the rounds agreed enough to rank the row (see [`SETTLED_WIDTH`]).
    #[serde(default = "settled_by_default")]
    pub settled: bool,
    /// The target for the ratio.
    pub target: Option<String>,
}

/// Reports written before rows had intervals ranked every row.
fn settled_by_default() -> bool {
    true
}

/// Latency figures in nanoseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JsonLatency {
    /// Median one-way latency.
    pub median_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// The fastest sample.
    pub min_ns: u64,
    /// How many samples.
    pub samples: usize,
}

/// Throughput figures in bytes per second.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JsonThroughput {
    /// The median round.
    pub bytes_per_sec_median: f64,
    /// Every round.
    pub bytes_per_sec_rounds: Vec<f64>,
}

impl JsonRow {
    /// The figure compared between runs, and whether higher is better.
    fn central(&self) -> Option<(f64, bool)> {
        match (&self.latency, &self.throughput) {
            (Some(l), _) => Some((l.median_ns as f64, false)),
            (_, Some(t)) => Some((t.bytes_per_sec_median, true)),
            _ => None,
        }
    }

    fn key(&self) -> (String, usize, bool) {
        (self.case.clone(), self.size, self.latency.is_some())
    }
}

/// Compares two reports row by row: the change of each figure, flagged as a regression or
/// an improvement beyond `threshold` (a fraction, such as 0.05), as Markdown.
pub fn compare(old: &JsonReport, new: &JsonReport, threshold: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## ipc-rs benchmark comparison\n\n- old: commit {}, {}\n- new: commit {}, {}\n- noise threshold: ±{:.0}%\n",
        old.machine.commit,
        old.machine.cpu_model,
        new.machine.commit,
        new.machine.cpu_model,
        threshold * 100.0
    );
    if old.machine.cpu_model != new.machine.cpu_model {
        let _ = writeln!(
            out,
            "> **The CPUs differ: compare ratios to floors, not absolute figures.**\n"
        );
    }
    let _ = writeln!(
        out,
        "| case | size | old | new | change | ratio to floor, old → new | verdict |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let (mut regressions, mut improvements) = (0, 0);
    for row in &new.rows {
        let Some(before) = old.rows.iter().find(|o| o.key() == row.key()) else {
            let _ = writeln!(out, "| {} | {} | | | | | new |", row.case, size(row.size));
            continue;
        };
        let (Some((a, higher_better)), Some((b, _))) = (before.central(), row.central()) else {
            continue;
        };
        if a <= 0.0 {
            continue;
        }
        let change = b / a - 1.0;
        let better = if higher_better { change } else { -change };
        let verdict = if better < -threshold {
            regressions += 1;
            "**regression**"
        } else if better > threshold {
            improvements += 1;
            "improvement"
        } else {
            ""
        };
        let show = |v: f64| {
            if higher_better {
                rate(v)
            } else {
                ns(Duration::from_secs_f64(v / 1e9))
            }
        };
        let ratios = match (before.ratio, row.ratio) {
            (Some(x), Some(y)) => format!("{x:.2} → {y:.2}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:+.1}% | {ratios} | {verdict} |",
            row.case,
            size(row.size),
            show(a),
            show(b),
            change * 100.0
        );
    }
    let _ = writeln!(
        out,
        "\n{regressions} regressions and {improvements} improvements beyond the threshold."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(ns: u64) -> Summary {
        let d = Duration::from_nanos(ns);
        Summary {
            samples: 10,
            min: d,
            median: d,
            p99: d * 2,
            p999: d * 3,
        }
    }

    fn row(
        case: &str,
        size: usize,
        metric: Metric,
        baseline: Option<usize>,
        target: Option<&'static str>,
    ) -> Row {
        Row {
            case: case.into(),
            size,
            metric,
            baseline,
            target,
        }
    }

    fn report() -> Report {
        Report {
            machine: Machine {
                cpu_model: "Test \"CPU\"\t1".into(),
                cpus: 2,
                cpus_online: 2,
                kernel: "6.0".into(),
                governor: None,
                hypervisor: Some("KVM".into()),
                rust: "rustc 1.0".into(),
                commit: "abc".into(),
                pinned: Some((0, 1)),
                warning: None,
                clock_overhead_ns: 20,
            },
            rows: vec![
                row(
                    "floor",
                    64,
                    Metric::Latency(summary(100), vec![100.0, 100.0, 100.0]),
                    None,
                    None,
                ),
                row(
                    "wrapper",
                    4096,
                    Metric::Latency(summary(150), vec![150.0, 149.0, 151.0]),
                    Some(0),
                    Some("≤ 1.05"),
                ),
                row(
                    "raw",
                    65536,
                    Metric::Throughput(vec![2e9, 1e9, 3e9]),
                    None,
                    None,
                ),
                row(
                    "ours",
                    65536,
                    Metric::Throughput(vec![1.5e9, 1.9e9]),
                    Some(2),
                    Some("≥ 0.95"),
                ),
            ],
            quick: true,
        }
    }

    #[test]
    fn ratios_and_tables() {
        let r = report();
        assert_eq!(r.ratio(&r.rows[1]), Some(1.5));
        assert_eq!(r.ratio(&r.rows[0]), None);
        // The median of the per-round ratios (0.75 and 1.9), not the ratio of the medians
        // (0.85): the statistic its interval is of.
        let ours = r.ratio(&r.rows[3]).unwrap();
        assert!((ours - 1.325).abs() < 1e-9, "{ours}");
        let md = r.to_markdown();
        assert!(
            md.contains(
                "| wrapper | 4 KiB | 150 ns | 300 ns | 450 ns | 10 | 1.50× (1.49–1.51) floor | ≤ 1.05 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| ours | 64 KiB | 1.58 GiB/s | 1.40 GiB/s | 2 | 1.32× raw | ≥ 0.95 |"),
            "{md}"
        );
        assert!(md.contains("pinned to CPU 0 and CPU 1"));
    }

    #[test]
    fn rows_against_other_crates_have_their_own_table_and_are_not_ranked_twice() {
        let mut r = report();
        r.rows.push(row(
            "peer: other crate",
            64,
            Metric::Latency(summary(200), vec![200.0, 200.0, 200.0]),
            None,
            None,
        ));
        r.rows.push(row(
            "wrapper",
            64,
            Metric::Latency(summary(150), vec![150.0, 150.0, 150.0]),
            Some(4),
            None,
        ));
        assert!(r.ranked(true, 64).iter().all(|row| row.baseline != Some(4)));
        let md = r.to_markdown();
        assert!(md.contains("### Against other crates"), "{md}");
        assert!(
            md.contains("| wrapper | other crate | 64 B | latency, median | 150 ns | 200 ns | 0.75× (0.75–0.75) |"),
            "{md}"
        );
    }

    #[test]
    fn a_ratio_lies_within_its_interval_even_when_the_pooled_median_is_skewed() {
        let mut r = report();
        r.rows = vec![
            row(
                "floor",
                64,
                Metric::Latency(summary(100), vec![100.0; 7]),
                None,
                None,
            ),
            // The pooled samples' median says 1.0x; every round says 1.5x to 1.7x.
            row(
                "skewed",
                64,
                Metric::Latency(
                    summary(100),
                    vec![150.0, 160.0, 150.0, 170.0, 155.0, 165.0, 150.0],
                ),
                Some(0),
                None,
            ),
        ];
        let ratio = r.ratio(&r.rows[1]).unwrap();
        let (lo, hi) = r.ratio_interval(&r.rows[1]).unwrap();
        assert!(lo <= ratio && ratio <= hi, "{ratio} outside {lo}–{hi}");
        assert!((ratio - 1.55).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn rows_whose_rounds_disagree_are_unsettled_and_not_ranked() {
        let rounds = |figures: &[f64]| figures.to_vec();
        let mut r = report();
        r.rows = vec![
            row(
                "floor (floor)",
                64,
                Metric::Latency(summary(100), rounds(&[100.0; 5])),
                None,
                None,
            ),
            // Faster on its median, but its rounds range over 2x: not ranked first.
            row(
                "noisy",
                64,
                Metric::Latency(summary(90), rounds(&[60.0, 90.0, 150.0, 70.0, 130.0])),
                Some(0),
                None,
            ),
            row(
                "steady",
                64,
                Metric::Latency(summary(110), rounds(&[110.0, 111.0, 109.0, 110.0, 110.0])),
                Some(0),
                None,
            ),
        ];
        assert!(!r.settled(&r.rows[1]));
        assert!(r.settled(&r.rows[2]));
        let (lo, hi) = r.ratio_interval(&r.rows[2]).unwrap();
        assert!(lo <= 1.1 && 1.1 <= hi, "{lo} {hi}");
        let md = r.to_markdown();
        assert!(md.contains("| 1 | steady |"), "{md}");
        assert!(md.contains("| – | noisy |"), "{md}");
        assert!(md.contains(", unsettled"), "{md}");
        assert!(md.contains("**Lowest latency**: steady"), "{md}");
        assert!(!md.contains("No row settled"), "{md}");
        let json: JsonReport = serde_json::from_str(&r.to_json()).unwrap();
        assert!(!json.rows[1].settled && json.rows[2].settled);
        assert!(json.rows[2].ratio_interval.is_some());
        // With nothing settled, the recommendation says so instead of being empty.
        r.rows.truncate(2);
        let md = r.to_markdown();
        assert!(
            md.contains("### Which mechanism should I use?\n\nNo row settled in this run"),
            "{md}"
        );
    }

    #[test]
    fn json_round_trips_and_compares() {
        let report = report();
        let json = report.to_json();
        let parsed: JsonReport = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed.machine.cpu_model, "Test \"CPU\"\t1");
        assert_eq!(parsed.rows.len(), 4);
        assert_eq!(parsed.rows[1].ratio, Some(1.5));
        assert_eq!(
            parsed.rows[3]
                .throughput
                .as_ref()
                .unwrap()
                .bytes_per_sec_rounds,
            [1.5e9, 1.9e9]
        );
        // The same run against itself: no change; a slower wrapper: a regression.
        let same = compare(&parsed, &parsed, 0.05);
        assert!(same.contains("0 regressions and 0 improvements"), "{same}");
        let mut slower = parsed.clone();
        slower.rows[1].latency.as_mut().unwrap().median_ns = 200;
        let diff = compare(&parsed, &slower, 0.05);
        assert!(
            diff.contains("| wrapper | 4 KiB | 150 ns | 200 ns | +33.3% |"),
            "{diff}"
        );
        assert!(diff.contains("1 regressions"), "{diff}");
    }

    #[test]
    fn sizes_rates_and_durations_read_well() {
        assert_eq!(size(64), "64 B");
        assert_eq!(size(65536), "64 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(ns(Duration::from_nanos(9_999)), "9999 ns");
        assert_eq!(ns(Duration::from_nanos(25_000)), "25.0 µs");
        assert_eq!(rate(512.0 * 1024.0 * 1024.0), "512 MiB/s");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
