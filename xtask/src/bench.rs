//! `cargo xtask bench`: the comparison runner.

use crate::cmd::{cargo, step};
use std::path::Path;
use std::process::Command;

/// Builds the runner in release mode and runs it with `args` (for example `--quick`);
/// `--peers` also builds the other crates it measures (the `peers` feature), first
/// installing libclang, which iceoryx2's bindings are generated with, if it is missing.
///
/// # Errors
///
/// The name of the step that failed.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut all = vec!["run", "--release", "--quiet", "-p", "ipc-bench"];
    if args.iter().any(|arg| arg == "--peers") {
        ensure_libclang()?;
        all.extend(["--features", "peers"]);
    }
    all.extend(["--bin", "ipc-bench-runner", "--"]);
    all.extend(args.iter().map(String::as_str));
    step("bench runner", &mut cargo(&all))
}

/// Where bindgen looks for libclang when `LIBCLANG_PATH` is not set (Debian's layout).
const LIBCLANG_DIRS: &[&str] = &["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];

/// Makes sure bindgen will find libclang (for `--peers`, and for every build with all
/// features, which include them): `LIBCLANG_PATH`, an LLVM install or the
/// system library directory; otherwise installs Debian's `libclang-dev` with apt (this
/// needs root), and says what to install when that fails.
pub fn ensure_libclang() -> Result<(), String> {
    if libclang_present() {
        return Ok(());
    }
    if Path::new("/usr/bin/apt-get").exists() {
        let installed = step(
            "install libclang for --peers",
            Command::new("apt-get").args(["install", "-y", "-q", "libclang-dev"]),
        );
        if installed.is_ok() && libclang_present() {
            return Ok(());
        }
    }
    Err(
        "`--peers` builds iceoryx2, whose bindings need libclang, and none was found: \
         install it (Debian and Ubuntu: `apt-get install libclang-dev`) or set LIBCLANG_PATH \
         to the directory that holds libclang.so"
            .to_owned(),
    )
}

fn libclang_present() -> bool {
    let has_libclang = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libclang") && name.contains(".so") && !name.contains("cpp")
            })
        })
    };
    if let Some(path) = std::env::var_os("LIBCLANG_PATH") {
        return has_libclang(Path::new(&path));
    }
    let llvm = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten();
    LIBCLANG_DIRS.iter().any(|dir| has_libclang(Path::new(dir)))
        || llvm
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("llvm-"))
            .any(|entry| has_libclang(&entry.path().join("lib")))
}
