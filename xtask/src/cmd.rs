//! Running commands: echo them, run them from the project root, fail with their name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A command for `cargo`, run from the project root.
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(project_root());
    cmd
}

/// Runs the step `name`, printing the command first.
///
/// # Errors
///
/// A message naming the step if the command cannot start or exits unsuccessfully.
pub fn step(name: &str, cmd: &mut Command) -> Result<(), String> {
    run(name, cmd, None)
}

/// Runs the step `name` as [`step`] does, killing it and everything it started if it has
/// not finished within `limit`: the last line of defence against a hang that no test's
/// own limit catches (`cargo nextest` lists each test binary without a time limit).
///
/// # Errors
///
/// As [`step`], and a message naming the step if it ran out of time.
pub fn step_within(name: &str, cmd: &mut Command, limit: Duration) -> Result<(), String> {
    run(name, cmd, Some(limit))
}

fn run(name: &str, cmd: &mut Command, limit: Option<Duration>) -> Result<(), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={} ", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    eprintln!("==> [{name}] {}{program} {}", envs.concat(), args.join(" "));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("step `{name}` could not start `{program}`: {e}"))?;
    let started = Instant::now();
    let status = loop {
        let waited = child.try_wait();
        match waited {
            Ok(Some(status)) => break status,
            Ok(None) if limit.is_some_and(|limit| started.elapsed() >= limit) => {
                let killed = kill_tree(child.id());
                let _ = child.wait();
                return Err(format!(
                    "step `{name}` did not finish within {} s and was killed with the {killed} \
                     processes it had started: something hung (a test binary's listing, a \
                     doc test, a process that outlived its test)",
                    limit.unwrap_or_default().as_secs(),
                ));
            }
            Ok(None) if limit.is_none() => {
                break child
                    .wait()
                    .map_err(|e| format!("step `{name}`: waiting for `{program}`: {e}"))?;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("step `{name}`: waiting for `{program}`: {e}")),
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("step `{name}` failed ({status})"))
    }
}

/// Kills `root` and every process below it (found through `/proc`, parents before their
/// children are gone, so none is reparented out of reach); returns how many were below.
fn kill_tree(root: u32) -> usize {
    let mut below = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for pid in children(parent) {
            below.push(pid);
            frontier.push(pid);
        }
    }
    for pid in std::iter::once(root).chain(below.iter().copied()) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
    below.len()
}

/// The processes whose parent is `parent`, from `/proc/*/stat`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The parent is the second field after the command, which is in parentheses
            // and may itself hold spaces and parentheses.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// True if `cargo <subcommand> --version` works, i.e. the subcommand is installed.
pub fn has_cargo_subcommand(subcommand: &str) -> bool {
    cargo(&[subcommand, "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_past_its_limit_is_killed_with_what_it_started() {
        let dir = std::env::temp_dir().join(format!("ipcrs-xtask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let limit = Duration::from_secs(2);
        let err = step_within("hang", Command::new("sh").args(["-c", &script]), limit).unwrap_err();
        assert!(started.elapsed() >= limit);
        assert!(err.contains("did not finish within 2 s"), "{err}");
        assert!(err.contains("the 1 processes"), "{err}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Gone, or dead and not yet reaped by whoever inherited it: SIGKILL was sent, but a
        // loaded machine may show the process running for a moment before it dies.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
            let dead = stat.as_ref().map_or(true, |stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            });
            if dead {
                break;
            }
            assert!(Instant::now() < deadline, "still alive: {stat:?}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_step_within_its_limit_reports_its_status() {
        assert!(step_within("true", &mut Command::new("true"), Duration::from_secs(60)).is_ok());
        let err =
            step_within("false", &mut Command::new("false"), Duration::from_secs(60)).unwrap_err();
        assert!(err.contains("step `false` failed"), "{err}");
    }
}
