//! The comparison report: a Markdown table for people, JSON for tools.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::stats::Summary;

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured, such as `"shm spin ping-pong (floor)"`.
    pub case: String,
    /// Message size in bytes.
    pub size: usize,
    /// One-way latency statistics.
    pub latency: Summary,
    /// The index of the row this one is compared with (its floor), if any.
    pub baseline: Option<usize>,
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

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

impl Report {
    /// The ratio of a row's median to its baseline's median.
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        let base = self.rows.get(row.baseline?)?;
        let base = base.latency.median.as_nanos();
        (base > 0).then(|| row.latency.median.as_nanos() as f64 / base as f64)
    }

    /// The report as Markdown: a header with the machine facts, then one table row per case.
    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## ipc-rs benchmark{}\n",
            if self.quick { " (quick)" } else { "" }
        );
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
            "- one-way latency = round trip / 2, timed per round trip; each includes two clock reads of {}\n",
            ns(m.clock_overhead)
        );
        let _ = writeln!(
            out,
            "| case | size | one-way median | p99 | p99.9 | samples | × baseline |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let ratio = match (self.ratio(row), row.baseline.and_then(|b| self.rows.get(b))) {
                (Some(r), Some(base)) => format!("{r:.2}× {}", base.case),
                _ => "floor".to_owned(),
            };
            let l = &row.latency;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {ratio} |",
                row.case,
                size(row.size),
                ns(l.median),
                ns(l.p99),
                ns(l.p999),
                l.samples
            );
        }
        out
    }

    /// The report as JSON, durations in nanoseconds.
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
            let l = &row.latency;
            let baseline = row
                .baseline
                .map_or_else(|| "null".to_owned(), |b| b.to_string());
            let ratio = self
                .ratio(row)
                .map_or_else(|| "null".to_owned(), |r| format!("{r:.4}"));
            let _ = writeln!(
                out,
                "    {{\"case\": {}, \"size\": {}, \"median_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"min_ns\": {}, \"samples\": {}, \"baseline\": {baseline}, \"ratio\": {ratio}}}{}",
                json_string(&row.case),
                row.size,
                l.median.as_nanos(),
                l.p99.as_nanos(),
                l.p999.as_nanos(),
                l.min.as_nanos(),
                l.samples,
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
                Row {
                    case: "floor".into(),
                    size: 64,
                    latency: summary(100),
                    baseline: None,
                },
                Row {
                    case: "wrapper".into(),
                    size: 4096,
                    latency: summary(150),
                    baseline: Some(0),
                },
            ],
            quick: true,
        }
    }

    #[test]
    fn ratios_and_table() {
        let r = report();
        assert_eq!(r.ratio(&r.rows[1]), Some(1.5));
        assert_eq!(r.ratio(&r.rows[0]), None);
        let md = r.to_markdown();
        assert!(
            md.contains("| wrapper | 4 KiB | 150 ns | 300 ns | 450 ns | 10 | 1.50× floor |"),
            "{md}"
        );
        assert!(md.contains("pinned to CPU 0 and CPU 1"));
    }

    #[test]
    fn json_is_escaped() {
        let json = report().to_json();
        assert!(
            json.contains(r#""cpu_model": "Test \"CPU\"\u00091""#),
            "{json}"
        );
        assert!(json.contains(r#""ratio": 1.5000"#));
        assert_eq!(json.matches('{').count(), json.matches('}').count());
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(size(64), "64 B");
        assert_eq!(size(65536), "64 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(ns(Duration::from_nanos(9_999)), "9999 ns");
        assert_eq!(ns(Duration::from_nanos(25_000)), "25.0 µs");
    }
}
