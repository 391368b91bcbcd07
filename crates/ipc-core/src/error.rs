//! The one error type of the toolkit.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::Arc;

/// The result type of every fallible call in the toolkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from an IPC operation: what was called, on which object, and what went wrong.
///
/// Every error names the operation (usually the system call, such as `"mq_open"`) and, where
/// there is one, the object it concerns (a name such as `/jobs` or a path). The cause is either
/// an OS error number, kept exactly as the kernel returned it, or an [`io::ErrorKind`] with a
/// message for failures that the toolkit detects itself.
///
/// It reads like the C call that failed:
///
/// ```
/// use ipc_core::Error;
///
/// let err = Error::from_raw_os_error("mq_open", libc::EEXIST).with_subject("/jobs");
/// assert_eq!(err.to_string(), "mq_open(/jobs): File exists (os error 17)");
/// assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
/// assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
/// ```
///
/// # Interoperability with `std::io`
///
/// `Error` converts into [`io::Error`] and back without losing anything, so `?` works in
/// functions that return `io::Result`. The `io::Error` carries this error as its payload: its
/// [`kind()`](io::Error::kind) is [`Error::kind`] and its message is the full message above.
/// Converting it back with `Error::from` recovers the original, including
/// [`raw_os_error`](Error::raw_os_error). Note that [`io::Error::raw_os_error`] itself returns
/// `None` for such an error, because `std` cannot attach a message to an OS error code; use
/// [`Error::os_error_of`] to read the code from any `io::Error`.
///
/// ```
/// use ipc_core::Error;
///
/// let io: std::io::Error = Error::from_raw_os_error("shm_open", libc::EACCES).into();
/// assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
/// assert_eq!(Error::os_error_of(&io), Some(libc::EACCES));
/// let back = Error::from(io);
/// assert_eq!(back.op(), "shm_open");
/// assert_eq!(back.raw_os_error(), Some(libc::EACCES));
/// ```
///
/// # Domain cases
///
/// Some failures have no good [`io::ErrorKind`]; they have predicates instead:
/// [`is_peer_gone`](Error::is_peer_gone) (and [`is_cut_short`](Error::is_cut_short) when
/// it went in the middle of a message), [`is_owner_died`](Error::is_owner_died),
/// [`is_corrupted`](Error::is_corrupted), [`is_limit_exceeded`](Error::is_limit_exceeded)
/// (with the [`Limit`] that was hit) and [`is_buffer_too_small`](Error::is_buffer_too_small)
/// (with the size that would have been needed).
#[derive(Clone)]
pub struct Error {
    op: &'static str,
    repr: Repr,
    subject: Option<Arc<str>>,
}

#[derive(Clone)]
enum Repr {
    Os(i32),
    Custom {
        kind: io::ErrorKind,
        domain: Domain,
        message: Cow<'static, str>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Domain {
    None,
    PeerGone,
    OwnerDied,
    Cancelled,
    Corrupted,
    // Boxed so that the common errors stay small; exceeding a limit is rare.
    LimitExceeded(Box<Limit>),
    BufferTooSmall { needed: usize },
}

/// A system or configured limit that an operation would have exceeded.
///
/// The name says where the limit comes from, so that a reader of the error knows what to
/// change: a file under `/proc/sys` (`"/proc/sys/fs/mqueue/msg_max"`), a constant of the
/// platform (`"PIPE_BUF"`) or an option of the toolkit (`"FramedReader::max_message_size"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    name: &'static str,
    value: u64,
}

impl Limit {
    /// Describes the limit called `name` whose value is `value`.
    pub const fn new(name: &'static str, value: u64) -> Self {
        Limit { name, value }
    }

    /// Where the limit comes from: a `/proc/sys` file, a constant or an option.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The value of the limit at the time of the error.
    pub const fn value(&self) -> u64 {
        self.value
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.name, self.value)
    }
}

impl Error {
    /// An error carrying the OS error number `errno`, returned by the call `op`.
    pub fn from_raw_os_error(op: &'static str, errno: i32) -> Self {
        Error {
            op,
            repr: Repr::Os(errno),
            subject: None,
        }
    }

    /// An error carrying the calling thread's current `errno`, for the call `op` that just
    /// failed.
    pub fn last_os_error(op: &'static str) -> Self {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        Self::from_raw_os_error(op, errno)
    }

    /// An error carrying `errno`, returned by the call `op`: for the crates that call nix.
    /// Hidden, and outside the API's compatibility promise, so that a nix upgrade never
    /// breaks a user; users have [`from_raw_os_error`](Error::from_raw_os_error).
    #[doc(hidden)]
    pub fn from_errno(op: &'static str, errno: nix::errno::Errno) -> Self {
        Self::from_raw_os_error(op, errno as i32)
    }

    /// An error of `kind` detected by the toolkit itself in `op`, explained by `message`.
    pub fn new(
        op: &'static str,
        kind: io::ErrorKind,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::custom(op, kind, Domain::None, message.into())
    }

    /// `op` could not finish before its deadline ([`io::ErrorKind::TimedOut`]).
    pub fn timed_out(op: &'static str) -> Self {
        Self::new(op, io::ErrorKind::TimedOut, "timed out")
    }

    /// `op` would have had to block, and the caller asked it not to
    /// ([`io::ErrorKind::WouldBlock`]).
    pub fn would_block(op: &'static str) -> Self {
        Self::new(op, io::ErrorKind::WouldBlock, "operation would block")
    }

    /// The peer of `op` is gone: it closed its end or died, possibly in the middle of a
    /// message ([`io::ErrorKind::BrokenPipe`]; see [`is_peer_gone`](Error::is_peer_gone)).
    pub fn peer_gone(op: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::custom(
            op,
            io::ErrorKind::BrokenPipe,
            Domain::PeerGone,
            message.into(),
        )
    }

    /// The peer of `op` went away in the middle of a message, which is dropped
    /// ([`io::ErrorKind::UnexpectedEof`], as `read_exact` says; [`is_peer_gone`](Error::is_peer_gone)
    /// is true too). A clean end between messages is [`peer_gone`](Error::peer_gone), so
    /// that a writer that died mid-message can be told from one that finished.
    pub fn peer_gone_mid_message(op: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::custom(
            op,
            io::ErrorKind::UnexpectedEof,
            Domain::PeerGone,
            message.into(),
        )
    }

    /// True if the peer went away in the middle of a message ([`peer_gone_mid_message`](Error::peer_gone_mid_message)),
    /// as opposed to a clean end between messages.
    pub fn is_cut_short(&self) -> bool {
        self.is_peer_gone() && self.kind() == io::ErrorKind::UnexpectedEof
    }

    /// The wait of `op` was ended by a cancelled [`Cancel`](crate::Cancel) token, such as the
    /// process's on a shutdown signal; nothing was done ([`io::ErrorKind::Other`], not
    /// `Interrupted`, which callers retry; see [`is_cancelled`](Error::is_cancelled)).
    pub fn cancelled(op: &'static str) -> Self {
        Self::custom(
            op,
            io::ErrorKind::Other,
            Domain::Cancelled,
            "cancelled: the wait was ended by a cancellation token (a shutdown request?)".into(),
        )
    }

    /// The owner of a lock died while holding it; the protected state may be inconsistent
    /// ([`io::ErrorKind::Other`]; see [`is_owner_died`](Error::is_owner_died)).
    pub fn owner_died(op: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::custom(op, io::ErrorKind::Other, Domain::OwnerDied, message.into())
    }

    /// State shared with another process failed validation: a bad magic number, version,
    /// index or length ([`io::ErrorKind::InvalidData`]; see
    /// [`is_corrupted`](Error::is_corrupted)).
    pub fn corrupted(op: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::custom(
            op,
            io::ErrorKind::InvalidData,
            Domain::Corrupted,
            message.into(),
        )
    }

    /// `what` asked for `requested`, more than `limit` allows
    /// ([`io::ErrorKind::InvalidInput`]; see [`limit`](Error::limit)).
    ///
    /// ```
    /// use ipc_core::{Error, Limit};
    ///
    /// let limit = Limit::new("/proc/sys/fs/mqueue/msg_max", 10);
    /// let err = Error::limit_exceeded("mq_open", "queue capacity", 64, limit).with_subject("/jobs");
    /// assert_eq!(
    ///     err.to_string(),
    ///     "mq_open(/jobs): queue capacity 64 exceeds the limit /proc/sys/fs/mqueue/msg_max = 10"
    /// );
    /// assert_eq!(err.limit(), Some(limit));
    /// ```
    pub fn limit_exceeded(op: &'static str, what: &str, requested: u64, limit: Limit) -> Self {
        let message = format!("{what} {requested} exceeds the limit {limit}");
        Self::custom(
            op,
            io::ErrorKind::InvalidInput,
            Domain::LimitExceeded(Box::new(limit)),
            message.into(),
        )
    }

    /// A message of `needed` bytes does not fit the caller's buffer
    /// ([`io::ErrorKind::InvalidInput`]; see [`needed_len`](Error::needed_len)).
    ///
    /// The receivers of this toolkit return it with the message still queued wherever the
    /// operating system allows that; each receiver documents what happens otherwise.
    pub fn buffer_too_small(op: &'static str, needed: usize, available: usize) -> Self {
        let message =
            format!("a message of {needed} bytes does not fit a buffer of {available} bytes");
        Self::custom(
            op,
            io::ErrorKind::InvalidInput,
            Domain::BufferTooSmall { needed },
            message.into(),
        )
    }

    /// The caller's buffer is below the `needed` bytes a receive requires whatever the
    /// message's length (a POSIX queue's message size limit, say), explained by `message`;
    /// the same kind and [`needed_len`](Error::needed_len) as
    /// [`buffer_too_small`](Error::buffer_too_small), for a call that refuses before it
    /// knows the message.
    pub fn buffer_below_minimum(
        op: &'static str,
        needed: usize,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::custom(
            op,
            io::ErrorKind::InvalidInput,
            Domain::BufferTooSmall { needed },
            message.into(),
        )
    }

    fn custom(
        op: &'static str,
        kind: io::ErrorKind,
        domain: Domain,
        message: Cow<'static, str>,
    ) -> Self {
        Error {
            op,
            repr: Repr::Custom {
                kind,
                domain,
                message,
            },
            subject: None,
        }
    }

    /// Names the object the error concerns: an [`IpcName`](crate::IpcName), a path or a
    /// description such as `"fd 7"`.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<Arc<str>>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Replaces the name of the operation, for errors converted from a source that did not
    /// know it (an [`io::Error`] or a bare [`Errno`](nix::errno::Errno)).
    #[must_use]
    pub fn with_op(mut self, op: &'static str) -> Self {
        self.op = op;
        self
    }

    /// The operation that failed, usually the C name of the system call; empty when unknown.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The object the error concerns, if it was named.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The OS error number, if the error came from the operating system.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self.repr {
            Repr::Os(errno) => Some(errno),
            Repr::Custom { .. } => None,
        }
    }

    /// The OS error number behind any [`io::Error`]: its own raw code, or the code of an
    /// `Error` that it carries as its payload.
    pub fn os_error_of(err: &io::Error) -> Option<i32> {
        err.raw_os_error().or_else(|| {
            err.get_ref()
                .and_then(|inner| inner.downcast_ref::<Error>())
                .and_then(Error::raw_os_error)
        })
    }

    /// The category of the error, as `std` names it.
    pub fn kind(&self) -> io::ErrorKind {
        match &self.repr {
            Repr::Os(errno) => io::Error::from_raw_os_error(*errno).kind(),
            Repr::Custom { kind, .. } => *kind,
        }
    }

    /// True if the error is a timeout ([`io::ErrorKind::TimedOut`]).
    pub fn is_timeout(&self) -> bool {
        self.kind() == io::ErrorKind::TimedOut
    }

    /// True if the operation would have blocked ([`io::ErrorKind::WouldBlock`]).
    pub fn is_would_block(&self) -> bool {
        self.kind() == io::ErrorKind::WouldBlock
    }

    /// True if the wait was ended by a cancelled [`Cancel`](crate::Cancel) token
    /// ([`cancelled`](Error::cancelled)), for example by a shutdown signal.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self.repr,
            Repr::Custom {
                domain: Domain::Cancelled,
                ..
            }
        )
    }

    /// True if the call was interrupted by a signal (`EINTR`).
    pub fn is_interrupted(&self) -> bool {
        self.kind() == io::ErrorKind::Interrupted
    }

    /// True if the peer is gone: it closed its end or died (`EPIPE`, `ECONNRESET`, or a
    /// peer found dead by the toolkit, for example in the middle of a message).
    pub fn is_peer_gone(&self) -> bool {
        match &self.repr {
            Repr::Os(errno) => *errno == libc::EPIPE || *errno == libc::ECONNRESET,
            Repr::Custom { domain, .. } => *domain == Domain::PeerGone,
        }
    }

    /// True if a lock's owner died while holding it (`EOWNERDEAD`, or detected by the
    /// toolkit); the state the lock protects may need repair.
    pub fn is_owner_died(&self) -> bool {
        match &self.repr {
            Repr::Os(errno) => *errno == libc::EOWNERDEAD,
            Repr::Custom { domain, .. } => *domain == Domain::OwnerDied,
        }
    }

    /// True if state shared with another process failed validation.
    pub fn is_corrupted(&self) -> bool {
        matches!(
            self.repr,
            Repr::Custom {
                domain: Domain::Corrupted,
                ..
            }
        )
    }

    /// True if a request exceeded a system or configured limit; see [`limit`](Error::limit).
    pub fn is_limit_exceeded(&self) -> bool {
        self.limit().is_some()
    }

    /// The limit that was exceeded, for errors made by [`Error::limit_exceeded`].
    pub fn limit(&self) -> Option<Limit> {
        match &self.repr {
            Repr::Custom {
                domain: Domain::LimitExceeded(limit),
                ..
            } => Some(**limit),
            _ => None,
        }
    }

    /// True if a message did not fit the caller's buffer; see [`needed_len`](Error::needed_len).
    pub fn is_buffer_too_small(&self) -> bool {
        self.needed_len().is_some()
    }

    /// The buffer size the message would have needed, for errors made by
    /// [`Error::buffer_too_small`].
    pub fn needed_len(&self) -> Option<usize> {
        match self.repr {
            Repr::Custom {
                domain: Domain::BufferTooSmall { needed },
                ..
            } => Some(needed),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.op.is_empty(), &self.subject) {
            (false, Some(subject)) => write!(f, "{}({subject}): ", self.op)?,
            (false, None) => write!(f, "{}: ", self.op)?,
            (true, Some(subject)) => write!(f, "{subject}: ")?,
            (true, None) => {}
        }
        match &self.repr {
            Repr::Os(errno) => write!(f, "{}", io::Error::from_raw_os_error(*errno)),
            Repr::Custom { message, .. } => f.write_str(message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("op", &self.op);
        if let Some(subject) = &self.subject {
            s.field("subject", subject);
        }
        match &self.repr {
            Repr::Os(errno) => s.field("os_error", errno),
            Repr::Custom { kind, domain, .. } => s.field("kind", kind).field("domain", domain),
        };
        s.field("message", &self.to_string()).finish()
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.kind(), err)
    }
}

impl From<io::Error> for Error {
    /// Recovers an `Error` carried by an `io::Error`; any other `io::Error` keeps its OS
    /// error number, or its kind and message. The operation is left empty: name it with
    /// [`Error::with_op`].
    fn from(err: io::Error) -> Self {
        if let Some(errno) = err.raw_os_error() {
            return Error::from_raw_os_error("", errno);
        }
        let kind = err.kind();
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            if let Some(inner) = err.into_inner() {
                if let Ok(ours) = inner.downcast::<Error>() {
                    return *ours;
                }
            }
            // Unreachable in practice: the payload was checked to be an `Error` above.
            return Error::new("", kind, "unrecognised error payload");
        }
        Error::new("", kind, err.to_string())
    }
}

/// Return values of system calls that signal failure with `-1` and `errno`.
pub trait SyscallReturn: Copy + PartialEq {
    /// The failure value, `-1`.
    const FAILED: Self;
}

impl SyscallReturn for i32 {
    const FAILED: Self = -1;
}

impl SyscallReturn for i64 {
    const FAILED: Self = -1;
}

impl SyscallReturn for isize {
    const FAILED: Self = -1;
}

/// Turns the return value of a C call that reports failure as `-1` and `errno` into a
/// [`Result`] naming the call.
///
/// ```
/// use ipc_core::internal::cvt;
///
/// assert_eq!(cvt("write", 5isize).unwrap(), 5);
/// let err = cvt("write", -1isize).unwrap_err();
/// assert_eq!(err.op(), "write");
/// ```
///
/// # Errors
///
/// The current `errno` when `ret` is `-1`.
pub fn cvt<T: SyscallReturn>(op: &'static str, ret: T) -> Result<T> {
    if ret == T::FAILED {
        Err(Error::last_os_error(op))
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests;
