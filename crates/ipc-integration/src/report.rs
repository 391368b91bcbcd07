//! The crash matrix's report: one line per mechanism, written where `cargo xtask test` and
//! `cargo xtask stress` find and print them.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the injections into one mechanism found.
#[derive(Clone, Debug, Default)]
pub struct CrashReport {
    /// The mechanism (and the side killed).
    pub mechanism: String,
    /// Processes killed.
    pub injections: u64,
    /// Survivors that neither progressed nor reported the death in time.
    pub deadlocks: u64,
    /// Messages delivered torn or damaged.
    pub torn: u64,
    /// Messages acknowledged to their sender (send returned `Ok`) and never delivered.
    pub lost: u64,
    /// Objects or descriptors left behind.
    pub leaked: u64,
    /// How long each survivor took to learn that its peer was dead.
    pub detect: Vec<Duration>,
}

impl CrashReport {
    /// An empty report for `mechanism`.
    pub fn new(mechanism: &str) -> Self {
        CrashReport {
            mechanism: mechanism.to_owned(),
            ..Self::default()
        }
    }

    /// The 99th percentile of the detection times (nearest rank), if any were measured.
    pub fn detect_p99(&self) -> Option<Duration> {
        let mut times = self.detect.clone();
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        let rank = (times.len() * 99).div_ceil(100).max(1);
        times.get(rank - 1).copied()
    }

    /// Whether every invariant held.
    pub fn is_clean(&self) -> bool {
        self.deadlocks == 0 && self.torn == 0 && self.lost == 0 && self.leaked == 0
    }

    /// The report line.
    pub fn line(&self) -> String {
        let p99 = self.detect_p99().map_or("n/a".to_owned(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1e3)
        });
        format!(
            "crash matrix: {:<28} injections {:>5}  deadlocks {}  torn {}  lost acked {}  leaked {}  p99 detect {}",
            self.mechanism, self.injections, self.deadlocks, self.torn, self.lost, self.leaked, p99
        )
    }

    /// Writes the line to `<dir>/<mechanism>.txt` (the directory is made if needed).
    ///
    /// # Errors
    ///
    /// The error of writing the file.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.txt", self.mechanism.replace([' ', '/'], "-")));
        std::fs::write(&path, format!("{}\n", self.line()))?;
        Ok(path)
    }
}

/// How many processes to kill per mechanism: `IPC_CRASH_INJECTIONS`, 200 by default.
pub fn injections() -> u64 {
    std::env::var("IPC_CRASH_INJECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}
