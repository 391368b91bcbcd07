//! Pinning processes to CPUs.

use ipc_core::{Error, Result};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The CPUs this process may run on.
///
/// # Errors
///
/// The `sched_getaffinity` error.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))
        .map_err(|e| Error::from_errno("sched_getaffinity", e))?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// Pins the calling process (all threads created after this) to `cpu`.
///
/// # Errors
///
/// The `sched_setaffinity` error, such as `EINVAL` for a CPU that is not available.
pub fn pin_to(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .map_err(|e| Error::from_errno("CpuSet::set", e))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| Error::from_errno("sched_setaffinity", e).with_subject(format!("cpu {cpu}")))
}

/// The two CPUs to pin a benchmark's two processes to: the first two allowed ones, or
/// `None` if only one is allowed (the processes then share it, and the report says so).
///
/// # Errors
///
/// The `sched_getaffinity` error.
pub fn cpu_pair() -> Result<Option<(usize, usize)>> {
    let cpus = allowed_cpus()?;
    Ok(match cpus.as_slice() {
        [a, b, ..] => Some((*a, *b)),
        _ => None,
    })
}
