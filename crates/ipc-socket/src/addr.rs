//! Unix socket addresses: file-system paths and Linux abstract names.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ipc_core::{Error, Limit, Result};

/// The longest path a Unix socket address holds: `sun_path` is 108 bytes with the NUL.
pub const MAX_PATH_LEN: usize = 107;

/// Where a Unix socket lives.
///
/// - [`UnixAddr::Path`] is a socket file. It obeys file permissions, so the toolkit's
///   listeners create it owner-only by default, and it must be removed when done (the
///   listener does that).
/// - [`UnixAddr::Abstract`] is a name in the network namespace's abstract space (shown as
///   `@name`). It needs no cleanup and vanishes with the socket, but **anyone in the same
///   network namespace can connect to it**: no permissions protect it. Check
///   [peer credentials](crate::UnixSocketExt::peer_credentials) before trusting a peer.
///
/// ```
/// use ipc_socket::UnixAddr;
///
/// assert_eq!(UnixAddr::path("/run/app.sock").to_string(), "/run/app.sock");
/// assert_eq!(UnixAddr::abstract_name("app").to_string(), "@app");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// A socket file at this path.
    Path(PathBuf),
    /// A name in the abstract namespace (without the leading NUL).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// The socket file at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        UnixAddr::Path(path.into())
    }

    /// The abstract name `name` (unprotected: see the type's documentation).
    pub fn abstract_name(name: impl AsRef<[u8]>) -> Self {
        UnixAddr::Abstract(name.as_ref().to_vec())
    }

    /// The path, for a path address.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            UnixAddr::Path(path) => Some(path),
            UnixAddr::Abstract(_) => None,
        }
    }

    /// The address as nix's `sockaddr_un`.
    pub(crate) fn to_sockaddr(&self, op: &'static str) -> Result<nix::sys::socket::UnixAddr> {
        let len = match self {
            UnixAddr::Path(path) => path.as_os_str().as_bytes().len(),
            UnixAddr::Abstract(name) => name.len(),
        };
        if len > MAX_PATH_LEN {
            let limit = Limit::new("sun_path (107 bytes)", MAX_PATH_LEN as u64);
            return Err(
                Error::limit_exceeded(op, "socket address length", len as u64, limit)
                    .with_subject(self.to_string()),
            );
        }
        let made = match self {
            UnixAddr::Path(path) => nix::sys::socket::UnixAddr::new(path.as_path()),
            UnixAddr::Abstract(name) => nix::sys::socket::UnixAddr::new_abstract(name),
        };
        made.map_err(|e| Error::from_errno(op, e).with_subject(self.to_string()))
    }

    /// The address of a nix `sockaddr_un`, if it is a path or an abstract name.
    pub(crate) fn from_sockaddr(addr: &nix::sys::socket::UnixAddr) -> Option<UnixAddr> {
        if let Some(path) = addr.path() {
            return Some(UnixAddr::Path(path.to_path_buf()));
        }
        addr.as_abstract()
            .map(|name| UnixAddr::Abstract(name.to_vec()))
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "{}", path.display()),
            UnixAddr::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

impl From<&Path> for UnixAddr {
    fn from(path: &Path) -> Self {
        UnixAddr::Path(path.to_path_buf())
    }
}

impl From<PathBuf> for UnixAddr {
    fn from(path: PathBuf) -> Self {
        UnixAddr::Path(path)
    }
}
