//! The comparison report: Markdown tables for people, JSON for tools.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::stats::Summary;

/// What a case measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// One-way latency statistics (lower is better).
    Latency(Summary),
    /// One-way throughput in bytes per second, one figure per round (higher is better).
    Throughput(Vec<f64>),
}

impl Metric {
    /// The figure ratios are taken of: the median latency in nanoseconds, or the median
    /// throughput.
    pub fn central(&self) -> f64 {
        match self {
            Metric::Latency(s) => s.median.as_nanos() as f64,
            Metric::Throughput(rounds) => median(rounds),
        }
    }
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
#[derive(Debug, Clone)]
pub struct Machine {
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The CPUs of the two processes, or `None` if they could not be pinned apart.
    pub pinned: Option<(usize, usize)>,
    /// The cost of one clock read, included twice in every timed round trip.
    pub clock_overhead: Duration,
}

impl Machine {
    /// Reads the machine facts; `pinned` and `clock_overhead` come from the runner.
    pub fn detect(pinned: Option<(usize, usize)>, clock_overhead: Duration) -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpus = crate::affinity::allowed_cpus()
            .map(|c| c.len())
            .unwrap_or(0);
        Machine {
            cpu_model,
            cpus,
            kernel,
            pinned,
            clock_overhead,
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
    /// The ratio of a row's median to its baseline's median (latency: lower is better;
    /// throughput: higher is better).
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        let base = self.rows.get(row.baseline?)?.metric.central();
        (base > 0.0).then(|| row.metric.central() / base)
    }

    fn ratio_cell(&self, row: &Row) -> String {
        match (self.ratio(row), row.baseline.and_then(|b| self.rows.get(b))) {
            (Some(r), Some(base)) => format!(
                "{r:.2}× {}",
                base.case.split(',').next().unwrap_or(&base.case)
            ),
            _ => "floor".to_owned(),
        }
    }

    /// The report as Markdown: a header with the machine facts, then a latency table and a
    /// throughput table.
    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let quick = if self.quick { " (quick)" } else { "" };
        let _ = writeln!(out, "## ipc-rs benchmark{quick}\n");
        let _ = writeln!(out, "- CPU: {} ({} CPUs available)", m.cpu_model, m.cpus);
        let _ = writeln!(out, "- kernel: {}", m.kernel);
        let _ = match m.pinned {
            Some((a, b)) => writeln!(out, "- two processes pinned to CPU {a} and CPU {b}"),
            None => writeln!(
                out,
                "- only one CPU: the two processes share it (not a cross-core figure)"
            ),
        };
        let _ = writeln!(
            out,
            "- latency: one-way = round trip / 2, timed per round trip, each including two clock reads of {}",
            ns(m.clock_overhead)
        );
        let _ = writeln!(
            out,
            "- throughput: one process streams numbered messages, the other checks every number; rounds interleaved with the other cases\n"
        );
        let _ = writeln!(out, "### One-way latency\n");
        let _ = writeln!(
            out,
            "| case | size | median | p99 | p99.9 | samples | × baseline | target |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            if let Metric::Latency(l) = &row.metric {
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
            let _ = writeln!(out, "\n### One-way throughput\n");
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
        out
    }

    /// The report as JSON: latencies in nanoseconds, throughput in bytes per second.
    pub fn to_json(&self) -> String {
        let m = &self.machine;
        let pinned = m
            .pinned
            .map_or_else(|| "null".to_owned(), |(a, b)| format!("[{a}, {b}]"));
        let mut out = format!(
            "{{\n  \"quick\": {},\n  \"machine\": {{\"cpu_model\": {}, \"cpus\": {}, \"kernel\": {}, \"pinned\": {pinned}, \"clock_overhead_ns\": {}}},\n  \"rows\": [\n",
            self.quick,
            json_string(&m.cpu_model),
            m.cpus,
            json_string(&m.kernel),
            m.clock_overhead.as_nanos()
        );
        for (i, row) in self.rows.iter().enumerate() {
            let baseline = row
                .baseline
                .map_or_else(|| "null".to_owned(), |b| b.to_string());
            let ratio = self
                .ratio(row)
                .map_or_else(|| "null".to_owned(), |r| format!("{r:.4}"));
            let metric = match &row.metric {
                Metric::Latency(l) => format!(
                    "\"median_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"min_ns\": {}, \"samples\": {}",
                    l.median.as_nanos(),
                    l.p99.as_nanos(),
                    l.p999.as_nanos(),
                    l.min.as_nanos(),
                    l.samples
                ),
                Metric::Throughput(rounds) => format!(
                    "\"bytes_per_sec_median\": {:.0}, \"bytes_per_sec_rounds\": [{}]",
                    median(rounds),
                    rounds
                        .iter()
                        .map(|r| format!("{r:.0}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let target = row.target.map_or_else(|| "null".to_owned(), json_string);
            let _ = writeln!(
                out,
                "    {{\"case\": {}, \"size\": {}, {metric}, \"baseline\": {baseline}, \"ratio\": {ratio}, \"target\": {target}}}{}",
                json_string(&row.case),
                row.size,
                if i + 1 < self.rows.len() { "," } else { "" }
            );
        }
        out.push_str("  ]\n}\n");
        out
    }

    /// Writes `report.md` and `report.json` into `dir`, creating it.
    ///
    /// # Errors
    ///
    /// The file system error.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.to_markdown())?;
        std::fs::write(dir.join("report.json"), self.to_json())
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
                kernel: "6.0".into(),
                pinned: Some((0, 1)),
                clock_overhead: Duration::from_nanos(20),
            },
            rows: vec![
                row("floor", 64, Metric::Latency(summary(100)), None, None),
                row(
                    "wrapper",
                    4096,
                    Metric::Latency(summary(150)),
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
        let ours = r.ratio(&r.rows[3]).unwrap();
        assert!((ours - 0.85).abs() < 1e-9, "{ours}");
        let md = r.to_markdown();
        assert!(
            md.contains(
                "| wrapper | 4 KiB | 150 ns | 300 ns | 450 ns | 10 | 1.50× floor | ≤ 1.05 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| ours | 64 KiB | 1.58 GiB/s | 1.40 GiB/s | 2 | 0.85× raw | ≥ 0.95 |"),
            "{md}"
        );
        assert!(md.contains("pinned to CPU 0 and CPU 1"));
    }

    #[test]
    fn json_is_escaped_and_complete() {
        let json = report().to_json();
        assert!(
            json.contains(r#""cpu_model": "Test \"CPU\"\u00091""#),
            "{json}"
        );
        assert!(
            json.contains(r#""ratio": 1.5000, "target": "≤ 1.05""#),
            "{json}"
        );
        assert!(
            json.contains(r#""bytes_per_sec_rounds": [1500000000, 1900000000]"#),
            "{json}"
        );
        assert_eq!(json.matches('{').count(), json.matches('}').count());
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
