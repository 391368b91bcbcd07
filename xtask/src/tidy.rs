//! `cargo xtask tidy`: the written rules of `CONVENTIONS.md` that a program can check.
//!
//! Each check reads the working tree (not the git index), so that it judges what is about
//! to be committed, and reports every violation with its file and line before failing.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::project_root;

/// The mechanism crates: none of them may depend on another.
const MECHANISMS: [&str; 6] = [
    "ipc-pipe",
    "ipc-socket",
    "ipc-shm",
    "ipc-sem",
    "ipc-mq",
    "ipc-signal",
];

/// Modules other than `sys` that a crate root may open to unsafe code, and why.
const UNSAFE_MODULES: [(&str, &str); 1] = [
    // `SharedRegion` and `ShmSafe` are unsafe traits: their definitions and the impls for
    // the standard types need the keyword.
    ("crates/ipc-core/src/lib.rs", "shared"),
];

/// Documents that the code may name: the ones in the repository.
const DOCUMENTS: [&str; 4] = ["DESIGN.md", "STYLE.md", "RELIABILITY.md", "PERFORMANCE.md"];

/// Runs every check.
///
/// # Errors
///
/// The violations, one per line, if there are any.
pub fn run_checks() -> Result<(), String> {
    let root = project_root();
    let files = source_files(&root);
    let mut problems = Vec::new();
    let members = workspace_members(&root)?;
    for member in &members {
        check_member(&root, member, &mut problems);
    }
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let relative = file.strip_prefix(&root).unwrap_or(file);
        // This file names the patterns it looks for.
        if relative.starts_with("xtask/src/tidy.rs") {
            continue;
        }
        check_outside_references(&root, relative, &text, &mut problems);
        if file.extension().is_some_and(|e| e == "rs") {
            if is_published_source(relative) {
                check_no_nix_in_public_signatures(relative, &text, &mut problems);
                check_doc_examples_use_their_crate(relative, &text, &mut problems);
            }
            check_unsafe_allowances(relative, &text, &mut problems);
            if is_test_file(relative) {
                check_no_sleep(relative, &text, &mut problems);
            }
        }
    }
    if problems.is_empty() {
        eprintln!(
            "==> tidy: {} members and {} files follow the conventions",
            members.len(),
            files.len()
        );
        Ok(())
    } else {
        Err(format!(
            "{} violations of CONVENTIONS.md:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// `cargo xtask tidy`.
///
/// # Errors
///
/// Unknown arguments, or the violations.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`tidy` takes no arguments, got `{arg}`"));
    }
    run_checks()
}

/// The member directories listed in the workspace manifest.
fn workspace_members(root: &Path) -> Result<Vec<String>, String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml"))
        .map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    let start = manifest
        .find("members = [")
        .ok_or("Cargo.toml lists no workspace members")?;
    let list = &manifest[start..];
    let end = list.find(']').ok_or("unterminated members list")?;
    Ok(list[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect())
}

/// Every member opts into the workspace lints and has a README; no mechanism crate depends
/// on another (development dependencies may: users never compile them).
fn check_member(root: &Path, member: &str, problems: &mut Vec<String>) {
    let manifest_path = format!("{member}/Cargo.toml");
    let Ok(manifest) = fs::read_to_string(root.join(&manifest_path)) else {
        problems.push(format!("{manifest_path}: missing"));
        return;
    };
    let opts_in = manifest
        .split("[lints]")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| !l.trim().is_empty()))
        .is_some_and(|line| line.replace(' ', "") == "workspace=true");
    if !opts_in {
        problems.push(format!(
            "{manifest_path}: no `[lints] workspace = true` (every crate takes the workspace lints)"
        ));
    }
    if !root.join(member).join("README.md").exists() {
        problems.push(format!("{member}: no README.md"));
    }
    let name = member.rsplit('/').next().unwrap_or(member);
    if MECHANISMS.contains(&name) {
        let dependencies = section(&manifest, "[dependencies]");
        for other in MECHANISMS.iter().filter(|other| **other != name) {
            if dependencies.lines().any(|line| {
                line.trim_start().starts_with(&format!("{other} "))
                    || line.trim_start().starts_with(&format!("{other}."))
            }) {
                problems.push(format!(
                    "{manifest_path}: the mechanism crate {name} depends on {other} (mechanism crates depend on ipc-core only)"
                ));
            }
        }
    }
}

/// The text of a manifest section, up to the next section header.
fn section<'a>(manifest: &'a str, header: &str) -> &'a str {
    let Some(start) = manifest.find(header) else {
        return "";
    };
    let rest = &manifest[start + header.len()..];
    let end = rest.find("\n[").unwrap_or(rest.len());
    &rest[..end]
}

/// Nothing refers to documents outside the repository.
fn check_outside_references(root: &Path, file: &Path, text: &str, problems: &mut Vec<String>) {
    for (number, line) in text.lines().enumerate() {
        let outside = line.contains("../shared")
            || DOCUMENTS
                .iter()
                .any(|doc| line.contains(doc) && !root.join(doc).exists());
        if outside {
            problems.push(format!(
                "{}:{}: refers to a document outside the repository (use ARCHITECTURE.md or CONVENTIONS.md)",
                file.display(),
                number + 1
            ));
        }
    }
}

/// Unsafe code is opened only to `sys` modules (and the listed exceptions); an allowance
/// anywhere else (a test, an example) says why on the line above.
fn check_unsafe_allowances(file: &Path, text: &str, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("allow(unsafe_code)") || line.trim_start().starts_with("//") {
            continue;
        }
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        let module = next
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ")
            .strip_prefix("mod ")
            .and_then(|m| m.strip_suffix(';'));
        let allowed_module = module.is_some_and(|m| {
            m == "sys"
                || UNSAFE_MODULES
                    .iter()
                    .any(|(f, name)| Path::new(f) == file && *name == m)
        });
        let explained = i > 0 && lines[i - 1].trim_start().starts_with("//");
        if !allowed_module && !explained {
            problems.push(format!(
                "{}:{}: unsafe code outside a `sys` module without a comment saying why",
                file.display(),
                i + 1
            ));
        }
    }
}

/// Tests wait for conditions, not for time: `ipc_testkit::wait_until`, or
/// `ipc_testkit::pause` for the timing of fault injection.
fn check_no_sleep(file: &Path, text: &str, problems: &mut Vec<String>) {
    for (number, line) in text.lines().enumerate() {
        if line.contains("thread::sleep(") && !line.trim_start().starts_with("//") {
            problems.push(format!(
                "{}:{}: a test sleeps (wait for the condition with ipc_testkit::wait_until)",
                file.display(),
                number + 1
            ));
        }
    }
}

/// A mechanism crate's doc examples are copied by users who depend on that crate alone:
/// they import from it (its re-exports), never from `ipc_core` or `nix`. Intra-doc links
/// to `ipc_core` items are fine.
fn check_doc_examples_use_their_crate(file: &Path, text: &str, problems: &mut Vec<String>) {
    if file.starts_with("crates/ipc-core") {
        return;
    }
    let (mut in_block, mut in_example) = (false, false);
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let Some(doc) = trimmed
            .strip_prefix("///")
            .or_else(|| trimmed.strip_prefix("//!"))
        else {
            (in_block, in_example) = (false, false);
            continue;
        };
        if let Some(info) = doc.trim_start().strip_prefix("```") {
            // A fence opens a block, an example unless it is marked as plain text, or
            // closes the open one.
            in_block = !in_block;
            in_example = in_block && info.trim() != "text";
            continue;
        }
        let names_crate = |krate: &str| {
            doc.match_indices(krate).any(|(at, _)| {
                !doc[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        };
        if in_example && (names_crate("ipc_core") || names_crate("nix::")) {
            problems.push(format!(
                "{}:{}: a doc example reaches outside its crate (use the crate's re-exports)",
                file.display(),
                number + 1
            ));
        }
    }
}

/// The library sources of the published crates (`ipc-core` and the mechanisms), without
/// `ipc_core::internal`, whose signatures may name nix types.
fn is_published_source(file: &Path) -> bool {
    let mut parts = file.components().map(|c| c.as_os_str().to_string_lossy());
    let (Some(top), Some(krate), Some(dir)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    top == "crates"
        && dir == "src"
        && (krate == "ipc-core" || MECHANISMS.contains(&krate.as_ref()))
        && !file.ends_with("ipc-core/src/internal.rs")
}

/// Names that this file imports from nix (`use nix::a::{B, C};` gives `B` and `C`).
fn nix_imports(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let Some(path) = line.trim().strip_prefix("use nix::") else {
            continue;
        };
        let path = path.trim_end_matches(';');
        let list = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => &path[open + 1..close],
            _ => path.rsplit("::").next().unwrap_or(path),
        };
        for name in list.split(',') {
            let name = name.rsplit(" as ").next().unwrap_or(name);
            let name = name.rsplit("::").next().unwrap_or(name).trim();
            if !name.is_empty() && name != "self" {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// No public signature names a nix type, so that a nix upgrade is never a breaking change
/// for users. A public item's signature is read up to its body (or its value, for a
/// constant); items marked `#[doc(hidden)]` are outside the API's promise.
fn check_no_nix_in_public_signatures(file: &Path, text: &str, problems: &mut Vec<String>) {
    let imported = nix_imports(text);
    let names_nix = |signature: &str| {
        signature.contains("nix::")
            || signature
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| imported.iter().any(|name| name == word))
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let public = trimmed.starts_with("pub ") || trimmed.starts_with("impl");
        let hidden = i > 0 && lines[i - 1].contains("doc(hidden)");
        if !public || hidden {
            continue;
        }
        // A function's signature may run over several lines: up to its body or `;`.
        let mut signature = String::new();
        for next in &lines[i..] {
            signature.push_str(next.trim());
            signature.push(' ');
            if next.contains('{') || next.trim_end().ends_with(';') || next.contains(" = ") {
                break;
            }
        }
        let end = signature.find(['{', '=']).unwrap_or(signature.len());
        let signature = &signature[..end];
        // A tuple struct's fields are private unless marked `pub`.
        let signature = match signature.find("struct ") {
            Some(at) if signature[at..].contains('(') && !signature.contains("(pub ") => {
                &signature[..at + signature[at..].find('(').unwrap_or(0)]
            }
            _ => signature,
        };
        if names_nix(signature) {
            problems.push(format!(
                "{}:{}: a public signature names a nix type (wrap it, or move the item to ipc_core::internal)",
                file.display(),
                i + 1
            ));
        }
    }
}

/// Integration tests and the examples' test.
fn is_test_file(file: &Path) -> bool {
    file.components().any(|c| c.as_os_str() == "tests")
}

/// The repository's Rust sources and Markdown files, without build output or fuzz data.
fn source_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | ".git" | "corpus" | "artifacts") {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") || name.ends_with(".md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_in_a_test_is_reported_and_a_comment_is_not() {
        let mut problems = Vec::new();
        let file = Path::new("crates/x/tests/it/a.rs");
        check_no_sleep(
            file,
            "fn t() {\n    std::thread::sleep(d);\n    // thread::sleep(d) is wrong\n}\n",
            &mut problems,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("crates/x/tests/it/a.rs:2:"));
        assert!(is_test_file(file));
        assert!(!is_test_file(Path::new("crates/x/src/a.rs")));
    }

    #[test]
    fn unsafe_is_allowed_for_sys_and_explained_allowances_only() {
        let mut problems = Vec::new();
        let lib = Path::new("crates/x/src/lib.rs");
        check_unsafe_allowances(lib, "#[allow(unsafe_code)]\nmod sys;\n", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        check_unsafe_allowances(lib, "#[allow(unsafe_code)]\nmod ring;\n", &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let test = Path::new("crates/x/tests/it/a.rs");
        check_unsafe_allowances(
            test,
            "// A raw call.\n#![allow(unsafe_code)]\n",
            &mut problems,
        );
        assert_eq!(problems.len(), 1, "an explained allowance is fine");
        check_unsafe_allowances(test, "#![allow(unsafe_code)]\n", &mut problems);
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn nix_in_a_public_signature_is_reported() {
        let file = Path::new("crates/ipc-pipe/src/x.rs");
        assert!(is_published_source(file));
        assert!(!is_published_source(Path::new(
            "crates/ipc-core/src/internal.rs"
        )));
        assert!(!is_published_source(Path::new(
            "crates/ipc-pipe/tests/it/x.rs"
        )));
        let text = "use nix::poll::{PollFlags, PollTimeout};\n\
                    pub fn a(events: PollFlags) {}\n\
                    pub fn b(\n    errno: nix::errno::Errno,\n) -> u32 {\n}\n\
                    pub(crate) fn c(events: PollFlags) {}\n\
                    #[doc(hidden)]\npub fn d(events: PollFlags) {}\n\
                    pub struct Seals(PollFlags);\n\
                    pub const NONE: u32 = PollFlags::empty().bits();\n\
                    impl From<PollTimeout> for Thing {}\n";
        let mut problems = Vec::new();
        check_no_nix_in_public_signatures(file, text, &mut problems);
        let lines: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').nth(1).unwrap_or(""))
            .collect();
        assert_eq!(lines, ["2", "3", "12"], "{problems:?}");
    }

    #[test]
    fn a_doc_example_importing_ipc_core_is_reported_and_a_link_is_not() {
        let file = Path::new("crates/ipc-mq/src/queue.rs");
        let text = "/// ```\n\
                    /// use ipc_core::IpcName;\n\
                    /// # Ok::<(), ipc_core::Error>(())\n\
                    /// ```\n\
                    /// A [`ShmSafe`](ipc_core::ShmSafe) value.\n\
                    /// ```\n\
                    /// use ipc_mq::IpcName;\n\
                    /// let me = nix::unistd::getpid();\n\
                    /// ```\n\
                    /// ```text\n\
                    /// 16 claim (ipc_core::internal::ThreadIdentity)\n\
                    /// ```\n\
                    /// ```\n\
                    /// use std::os::unix::net::UnixStream;\n\
                    /// ```\n\
                    //! prose naming ipc_core::internal\n";
        let mut problems = Vec::new();
        check_doc_examples_use_their_crate(file, text, &mut problems);
        let lines: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').nth(1).unwrap_or(""))
            .collect();
        assert_eq!(lines, ["2", "3", "8"], "{problems:?}");
        let mut core = Vec::new();
        check_doc_examples_use_their_crate(Path::new("crates/ipc-core/src/a.rs"), text, &mut core);
        assert!(core.is_empty());
    }

    #[test]
    fn a_mechanism_crate_depending_on_another_is_reported() {
        let manifest = "[package]\nname = \"ipc-sem\"\n\n[dependencies]\nipc-core.workspace = true\nipc-shm = { path = \"../ipc-shm\" }\n\n[dev-dependencies]\nipc-pipe = { path = \"../ipc-pipe\" }\n\n[lints]\nworkspace = true\n";
        let dir = std::env::temp_dir().join(format!("ipcrs-tidy-{}", std::process::id()));
        let member = dir.join("crates/ipc-sem");
        fs::create_dir_all(&member).unwrap();
        fs::write(member.join("Cargo.toml"), manifest).unwrap();
        let mut problems = Vec::new();
        check_member(&dir, "crates/ipc-sem", &mut problems);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("no README.md")));
        assert!(problems.iter().any(|p| p.contains("depends on ipc-shm")));
    }
}
