//! Running commands: echo them, run them from the project root, fail with their name.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    let status = cmd
        .status()
        .map_err(|e| format!("step `{name}` could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("step `{name}` failed ({status})"))
    }
}

/// True if `cargo <subcommand> --version` works, i.e. the subcommand is installed.
pub fn has_cargo_subcommand(subcommand: &str) -> bool {
    cargo(&[subcommand, "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
