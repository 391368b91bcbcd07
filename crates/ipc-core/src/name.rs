//! Validated names of POSIX IPC objects.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// The name of a POSIX shared-memory object, semaphore or message queue: `/` followed by one
/// to [`IpcName::MAX_LEN`] bytes that contain no `/` and no NUL.
///
/// `shm_open`, `sem_open` and `mq_open` each accept slightly different spellings (glibc strips
/// any number of leading slashes, the kernel's queue file system refuses `.`), so a name that
/// one of them takes may fail in another or refer to a different object. `IpcName` accepts
/// only the portable form that all three treat alike, and checks it once, when the name is
/// made.
///
/// ```
/// use ipc_core::IpcName;
///
/// let name = IpcName::new("/jobs")?;
/// assert_eq!(name.as_str(), "/jobs");
/// assert_eq!(name.as_cstr().to_bytes(), b"/jobs");
///
/// let err = IpcName::new("jobs").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("must start with '/'"));
/// # Ok::<(), ipc_core::Error>(())
/// ```
///
/// Cloning is cheap: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpcName {
    text: Arc<str>,
    c: Arc<CStr>,
}

impl IpcName {
    /// The longest name, in bytes, after the leading `/`.
    ///
    /// The file systems behind the objects allow 255 bytes (`NAME_MAX`) for the file name, and
    /// glibc stores a semaphore named `/x` as the file `sem.x` in `/dev/shm`, which takes four
    /// of them. 251 bytes therefore work for every kind of object.
    pub const MAX_LEN: usize = 251;

    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`], with a message naming the rule that failed, if the
    /// name does not start with `/`, is only `/`, contains another `/` or a NUL byte, is
    /// longer than [`IpcName::MAX_LEN`] bytes after the `/`, or is `/.` or `/..`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if let Err(rule) = check(&name) {
            return Err(
                Error::new("IpcName::new", io::ErrorKind::InvalidInput, rule)
                    .with_subject(shorten(&name)),
            );
        }
        // The check above rejected NUL bytes, so the conversion cannot fail; map the error
        // anyway rather than assert it.
        let c = CString::new(name.as_bytes()).map_err(|_| {
            Error::new(
                "IpcName::new",
                io::ErrorKind::InvalidInput,
                "contains a NUL byte",
            )
        })?;
        Ok(IpcName {
            text: name.into(),
            c: c.into(),
        })
    }

    /// A fresh name `/<prefix>-<pid>-<nonce>-<sequence>` that no other thread or process has
    /// been given by this function.
    ///
    /// The process id separates live processes, the nonce (taken from the clock once per
    /// process) separates a process from an earlier one that had the same id, and the
    /// sequence number separates the calls within a process. The creator's process id in the
    /// name also lets a cleanup tool tell whether the creator is still alive
    /// ([`IpcName::creator_pid`]).
    ///
    /// ```
    /// use ipc_core::IpcName;
    ///
    /// let a = IpcName::unique("demo")?;
    /// let b = IpcName::unique("demo")?;
    /// assert_ne!(a, b);
    /// assert!(a.as_str().starts_with("/demo-"));
    /// assert_eq!(a.creator_pid(), Some(std::process::id()));
    /// # Ok::<(), ipc_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `prefix` contains `/` or NUL, or is so long that
    /// the name would exceed [`IpcName::MAX_LEN`].
    pub fn unique(prefix: &str) -> Result<Self> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        static NONCE: OnceLock<u32> = OnceLock::new();
        let nonce = *NONCE.get_or_init(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            // Fold the seconds into the nanoseconds so that the nonce changes every
            // nanosecond and does not repeat for centuries.
            let folded = now.as_secs().wrapping_mul(1_000_000_007) ^ u64::from(now.subsec_nanos());
            u32::try_from((folded ^ (folded >> 32)) & 0xffff_ffff).unwrap_or_default()
        });
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let prefix = prefix.strip_prefix('/').unwrap_or(prefix);
        if prefix.contains('/') || prefix.contains('\0') {
            return Err(Error::new(
                "IpcName::unique",
                io::ErrorKind::InvalidInput,
                "the prefix must not contain '/' or NUL",
            )
            .with_subject(shorten(prefix)));
        }
        Self::new(format!(
            "/{prefix}-{}-{nonce:08x}-{sequence}",
            std::process::id()
        ))
        .map_err(|err| err.with_op("IpcName::unique"))
    }

    /// The process id embedded by [`IpcName::unique`], or `None` for a name of another form.
    ///
    /// Cleanup tools use it to decide whether the creator of a leftover object is gone.
    pub fn creator_pid(&self) -> Option<u32> {
        Self::creator_pid_of(self.as_str())
    }

    /// Like [`creator_pid`](IpcName::creator_pid), for text that is not (or no longer) an
    /// `IpcName`: a file name found in `/dev/shm` or `/dev/mqueue`, with or without a `sem.`
    /// prefix or the leading `/`.
    ///
    /// ```
    /// use ipc_core::IpcName;
    ///
    /// assert_eq!(IpcName::creator_pid_of("sem.demo-4242-0badcafe-7"), Some(4242));
    /// assert_eq!(IpcName::creator_pid_of("jobs"), None);
    /// ```
    pub fn creator_pid_of(name: &str) -> Option<u32> {
        parse_creator_pid(name)
    }

    /// The name, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name without its leading `/`, as it appears in `/dev/shm` or `/dev/mqueue`.
    pub fn file_name(&self) -> &str {
        &self.text[1..]
    }

    /// The name as a C string, for `shm_open`, `sem_open` and `mq_open`.
    pub fn as_cstr(&self) -> &CStr {
        &self.c
    }
}

/// Parses `<anything>-<pid>-<8 hex digits>-<sequence>` from the end of a name made by
/// [`IpcName::unique`].
fn parse_creator_pid(name: &str) -> Option<u32> {
    let mut fields = name.rsplitn(4, '-');
    let sequence = fields.next()?;
    let nonce = fields.next()?;
    let pid = fields.next()?;
    let prefix = fields.next()?;
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if prefix.is_empty() || !digits(sequence, 10) || nonce.len() != 8 || !digits(nonce, 16) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid > 0)
}

fn check(name: &str) -> std::result::Result<(), &'static str> {
    let Some(rest) = name.strip_prefix('/') else {
        return Err("an IPC name must start with '/'");
    };
    if rest.is_empty() {
        return Err("an IPC name needs at least one character after the '/'");
    }
    if rest.contains('/') {
        return Err("an IPC name must not contain a '/' after the first character");
    }
    if rest.contains('\0') {
        return Err("an IPC name must not contain a NUL byte");
    }
    if rest.len() > IpcName::MAX_LEN {
        return Err("an IPC name must not be longer than 251 bytes after the '/'");
    }
    if rest == "." || rest == ".." {
        return Err("an IPC name must not be '/.' or '/..'");
    }
    Ok(())
}

/// Shortens a rejected name for an error message, so that a megabyte of input does not
/// become a megabyte of error.
fn shorten(name: &str) -> String {
    const SHOWN: usize = 64;
    if name.len() <= SHOWN {
        return name.escape_debug().to_string();
    }
    let mut end = SHOWN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", name[..end].escape_debug(), name.len())
}

impl fmt::Display for IpcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for IpcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpcName({:?})", &*self.text)
    }
}

impl AsRef<str> for IpcName {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl AsRef<CStr> for IpcName {
    fn as_ref(&self) -> &CStr {
        &self.c
    }
}

impl FromStr for IpcName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        IpcName::new(s)
    }
}

impl TryFrom<&str> for IpcName {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        IpcName::new(s)
    }
}

impl TryFrom<String> for IpcName {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        IpcName::new(s)
    }
}

impl From<&IpcName> for Arc<str> {
    /// Shares the name's text, for [`Error::with_subject`], without copying it.
    fn from(name: &IpcName) -> Self {
        name.text.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> String {
        IpcName::new(name).unwrap_err().to_string()
    }

    #[test]
    fn accepts_portable_names() {
        for name in ["/a", "/jobs", "/with.dot", "/...", "/ünïcode", "/a b"] {
            let parsed = IpcName::new(name).unwrap();
            assert_eq!(parsed.as_str(), name);
            assert_eq!(parsed.as_cstr().to_bytes(), name.as_bytes());
            assert_eq!(parsed.file_name(), &name[1..]);
        }
    }

    #[test]
    fn each_rule_is_named() {
        assert!(rule("jobs").contains("must start with '/'"));
        assert!(rule("").contains("must start with '/'"));
        assert!(rule("/").contains("at least one character"));
        assert!(rule("/a/b").contains("must not contain a '/'"));
        assert!(rule("//a").contains("must not contain a '/'"));
        assert!(rule("/a\0b").contains("NUL"));
        assert!(rule("/.").contains("'/.' or '/..'"));
        assert!(rule("/..").contains("'/.' or '/..'"));
        let err = IpcName::new("x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.op(), "IpcName::new");
        assert_eq!(err.subject(), Some("x"));
    }

    #[test]
    fn length_limit_is_exact() {
        let longest = format!("/{}", "n".repeat(IpcName::MAX_LEN));
        assert_eq!(
            IpcName::new(longest.clone()).unwrap().file_name().len(),
            251
        );
        let too_long = format!("{longest}n");
        assert!(rule(&too_long).contains("longer than 251 bytes"));
        // The limit counts bytes, not characters: 126 two-byte characters are 252 bytes.
        assert!(IpcName::new(format!("/{}", "é".repeat(125))).is_ok());
        assert!(IpcName::new(format!("/{}", "é".repeat(126))).is_err());
    }

    #[test]
    fn huge_names_give_short_errors() {
        let huge = format!("/{}", "x".repeat(1 << 20));
        let err = IpcName::new(huge).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
        assert!(err.subject().unwrap().contains("1048577 bytes"));
    }

    #[test]
    fn unique_names_differ_across_threads() {
        let names: Vec<IpcName> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..500)
                            .map(|_| IpcName::unique("t").unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        assert!(
            names
                .iter()
                .all(|n| n.creator_pid() == Some(std::process::id()))
        );
    }

    #[test]
    fn unique_rejects_bad_prefixes() {
        assert!(IpcName::unique("a/b").is_err());
        assert!(IpcName::unique("a\0b").is_err());
        assert!(IpcName::unique(&"p".repeat(300)).is_err());
        // A leading slash is tolerated and not doubled.
        assert!(IpcName::unique("/p").unwrap().as_str().starts_with("/p-"));
    }

    #[test]
    fn creator_pid_parses_only_unique_names() {
        assert_eq!(parse_creator_pid("/x-12-0000abcd-3"), Some(12));
        assert_eq!(parse_creator_pid("sem.x-y-12-0000abcd-3"), Some(12));
        assert_eq!(parse_creator_pid("/x-12-abcd-3"), None);
        assert_eq!(parse_creator_pid("/x-12-0000abcd-"), None);
        assert_eq!(parse_creator_pid("12-0000abcd-3"), None);
        assert_eq!(parse_creator_pid("/x-0-0000abcd-3"), None);
        assert_eq!(parse_creator_pid("/x-zz-0000abcd-3"), None);
        assert_eq!(IpcName::new("/jobs").unwrap().creator_pid(), None);
    }
}
