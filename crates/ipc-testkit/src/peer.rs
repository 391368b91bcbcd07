//! Two-process tests: the test binary re-executed in a peer role.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ipc_core::Deadline;

use crate::lines::{LineReader, wait_readable};
use crate::{sys, test_timeout};

/// What a peer role returns: `Ok` for success (exit code 0), or an error that the parent
/// sees in the peer's output (exit code 1). A panic in a role gives exit code 101.
pub type PeerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A peer role: the code a re-executed test binary runs in the other process.
pub type Role = fn(&mut PeerContext) -> PeerResult;

/// The name of the test function that [`peer_roles!`](crate::peer_roles) defines.
pub const PEER_ENTRY_TEST: &str = "ipc_testkit_peer_entry";

const ENV_ROLE: &str = "IPC_TESTKIT_ROLE";
const ENV_ARGC: &str = "IPC_TESTKIT_ARGC";
const ENV_ARG: &str = "IPC_TESTKIT_ARG_";

/// The user and group id of `nobody` on Linux.
pub const NOBODY: u32 = 65534;

/// Declares the peer roles of a test binary. Invoke it once, at the root of the test crate
/// (`tests/it/main.rs`).
///
/// It defines a test named `ipc_testkit_peer_entry`. In a normal run that test only checks
/// that the role names are distinct. When [`Peer`] re-executes the test binary, it runs just
/// that test, which runs the requested role and exits the process.
///
/// ```no_run
/// ipc_testkit::peer_roles! {
///     "echo" => echo,
///     "hang" => hang,
/// }
///
/// fn echo(ctx: &mut ipc_testkit::PeerContext) -> ipc_testkit::PeerResult {
///     ctx.ready()?;
///     let line = ctx.recv()?;
///     ctx.send(&line)?;
///     Ok(())
/// }
/// ```
#[macro_export]
macro_rules! peer_roles {
    ($($name:literal => $role:path),* $(,)?) => {
        #[test]
        fn ipc_testkit_peer_entry() {
            $crate::__peer_entry(&[$(($name, $role as $crate::Role)),*]);
        }
    };
}

#[doc(hidden)]
pub fn __peer_entry(roles: &[(&str, Role)]) {
    let Ok(role_name) = std::env::var(ENV_ROLE) else {
        // A normal test run: check the table, which is all this test can do here.
        for (i, (name, _)) in roles.iter().enumerate() {
            assert!(!name.is_empty(), "peer role {i} has an empty name");
            assert!(
                roles[..i].iter().all(|(other, _)| other != name),
                "peer role `{name}` is declared twice"
            );
        }
        return;
    };
    let code = match roles.iter().find(|(name, _)| *name == role_name) {
        None => {
            eprintln!("ipc-testkit: this test binary has no peer role `{role_name}`");
            2
        }
        Some((_, role)) => match PeerContext::from_env(role_name.clone()) {
            Err(err) => {
                eprintln!("ipc-testkit: peer `{role_name}` could not start: {err}");
                2
            }
            Ok(mut ctx) => {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| role(&mut ctx)));
                match outcome {
                    Ok(Ok(())) => 0,
                    Ok(Err(err)) => {
                        eprintln!("ipc-testkit: peer `{role_name}` failed: {err}");
                        1
                    }
                    // The panic hook has already printed the message to stderr.
                    Err(_) => 101,
                }
            }
        },
    };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // Exit here, so that the test harness of the peer process does not go on to print a
    // summary or run anything else.
    std::process::exit(code);
}

/// The peer's side of a two-process test: its arguments and the line channel to the parent.
///
/// The parent's [`Peer::send`] lines arrive at [`PeerContext::recv`] (over the peer's
/// stdin), and the peer's [`PeerContext::send`] lines at [`Peer::recv`] (over a pipe at
/// descriptor 3). Lines must not contain `\n`.
#[derive(Debug)]
pub struct PeerContext {
    role: String,
    args: Vec<String>,
    control: File,
    input: LineReader,
}

impl PeerContext {
    fn from_env(role: String) -> io::Result<Self> {
        let control = sys::take_control_fd().ok_or_else(|| {
            io::Error::other("descriptor 3 is not open: this process was not started by Peer")
        })?;
        // The descriptor had to survive `exec`; now that it is ours, keep it from leaking
        // into processes that the role starts.
        nix::fcntl::fcntl(
            &control,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        let argc: usize = std::env::var(ENV_ARGC)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let args = (0..argc)
            .map(|i| std::env::var(format!("{ENV_ARG}{i}")).unwrap_or_default())
            .collect();
        let input = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(PeerContext {
            role,
            args,
            control: File::from(control),
            input: LineReader::new(input),
        })
    }

    /// The role this process plays.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The arguments the parent passed to [`PeerBuilder::arg`].
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Argument `index`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the parent passed fewer arguments.
    pub fn arg(&self, index: usize) -> io::Result<&str> {
        self.args.get(index).map(String::as_str).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("peer `{}` has no argument {index}", self.role),
            )
        })
    }

    /// Tells the parent that the peer is ready; [`PeerBuilder::spawn`] returns then.
    ///
    /// # Errors
    ///
    /// The write error, such as `BrokenPipe` if the parent is gone.
    pub fn ready(&mut self) -> io::Result<()> {
        self.ready_with("")
    }

    /// Tells the parent that the peer is ready, with a line of data
    /// ([`Peer::ready_payload`]), such as the name of an object it created.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `payload` contains `\n`; the write error otherwise.
    pub fn ready_with(&mut self, payload: &str) -> io::Result<()> {
        self.write_line(&format!("ready {payload}"))
    }

    /// Sends a line to the parent ([`Peer::recv`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `line` contains `\n`; the write error otherwise.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.write_line(&format!("line {line}"))
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        if line.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a control line must not contain '\\n'",
            ));
        }
        self.control.write_all(format!("{line}\n").as_bytes())
    }

    /// Receives the next line from the parent ([`Peer::send`]), waiting at most
    /// [`test_timeout`].
    ///
    /// # Errors
    ///
    /// `TimedOut`, or `UnexpectedEof` if the parent closed the channel.
    pub fn recv(&mut self) -> io::Result<String> {
        self.input
            .read_line(crate::test_deadline())?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the parent closed the channel",
                )
            })
    }
}

/// Options for starting a [`Peer`].
#[derive(Debug, Clone)]
pub struct PeerBuilder {
    role: String,
    args: Vec<String>,
    unprivileged: bool,
    timeout: Duration,
    tmpfs: Option<(String, String)>,
}

impl PeerBuilder {
    /// Adds an argument for [`PeerContext::arg`].
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs the peer as user and group `nobody` (65534) with no supplementary groups, for
    /// permission tests. The test process must be root.
    #[must_use]
    pub fn unprivileged(mut self) -> Self {
        self.unprivileged = true;
        self
    }

    /// Mounts a tmpfs of `size` (such as `"256k"`) over `dir` in a mount namespace of the
    /// peer's own, for tests of a full file system (`/dev/shm` full, say). Needs root; the
    /// rest of the machine never sees the mount.
    #[must_use]
    pub fn private_tmpfs(mut self, dir: &str, size: &str) -> Self {
        self.tmpfs = Some((dir.to_owned(), format!("size={size}")));
        self
    }

    /// How long to wait for readiness, lines and exit; [`test_timeout`] by default.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the peer and waits until it reports ready.
    ///
    /// # Errors
    ///
    /// If the peer cannot be started, exits before it is ready, or is not ready within the
    /// timeout (it is then killed and reaped). The error holds the peer's output.
    pub fn spawn(self) -> Result<Peer, PeerError> {
        let fail = |what: String| PeerError {
            message: format!("peer `{}` {what}", self.role),
            pid: None,
        };
        let (control_read, control_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| fail(format!("pipe2: {e}")))?;
        let program = if self.unprivileged {
            if !nix::unistd::geteuid().is_root() {
                return Err(fail(
                    "cannot drop privileges: the test process is not root".into(),
                ));
            }
            exe_for_unprivileged().map_err(|e| fail(format!("cannot open the test binary: {e}")))?
        } else {
            std::env::current_exe()
                .map_err(|e| fail(format!("cannot find the test binary: {e}")))?
        };
        let mut cmd = Command::new(program);
        cmd.args([
            PEER_ENTRY_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ENV_ROLE, &self.role)
        .env(ENV_ARGC, self.args.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so that killing the peer also kills anything it started.
        .process_group(0);
        for (i, arg) in self.args.iter().enumerate() {
            cmd.env(format!("{ENV_ARG}{i}"), arg);
        }
        if self.unprivileged {
            // `std` also drops the supplementary groups when root sets a user id.
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let tmpfs = match &self.tmpfs {
            None => None,
            Some((dir, options)) => {
                let c = |s: &str| {
                    std::ffi::CString::new(s)
                        .map_err(|_| fail(format!("NUL in tmpfs setting {s:?}")))
                };
                Some((c(dir)?, c(options)?))
            }
        };
        sys::configure_peer(&mut cmd, control_write.as_raw_fd(), tmpfs);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("could not be started: {e}")))?;
        drop(control_write);
        let pid = child.id();
        register_spawned(pid);
        let pidfd = match ipc_core::internal::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("(pid {pid}): pidfd_open: {err}")));
            }
        };
        let stdout = Capture::start(child.stdout.take());
        let stderr = Capture::start(child.stderr.take());
        let input = child.stdin.take();
        let mut peer = Peer {
            role: self.role,
            child,
            pidfd,
            status: None,
            control: LineReader::new(control_read),
            input,
            stdout,
            stderr,
            ready_payload: String::new(),
            timeout: self.timeout,
        };
        match peer.control.read_line(Deadline::after(peer.timeout)) {
            Ok(Some(line)) => match line.strip_prefix("ready") {
                Some(payload) => {
                    peer.ready_payload = payload.strip_prefix(' ').unwrap_or(payload).to_owned();
                    Ok(peer)
                }
                None => Err(peer.failure(&format!("sent {line:?} before reporting ready"))),
            },
            Ok(None) => Err(peer.failure(
                "exited before reporting ready (is `peer_roles!` invoked at the root of the test crate?)",
            )),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                let timeout = peer.timeout;
                Err(peer.failure(&format!("did not report ready within {timeout:?}")))
            }
            Err(err) => Err(peer.failure(&format!("control channel failed: {err}"))),
        }
    }
}

/// A peer process: the test binary re-executed in a role declared with
/// [`peer_roles!`](crate::peer_roles).
///
/// The peer is in a process group of its own and is killed (with everything it started) and
/// reaped when the `Peer` is dropped, and also when the thread that started it exits
/// (`PR_SET_PDEATHSIG`), so a failing or hanging test never leaves it behind. Every wait
/// is bounded by the builder's timeout; on any failure the error carries the peer's stdout
/// and stderr.
///
/// ```no_run
/// use ipc_testkit::Peer;
///
/// let mut peer = Peer::builder("echo").arg("hello").spawn()?;
/// peer.send("ping")?;
/// assert_eq!(peer.recv()?, "ping");
/// peer.wait_success()?;
/// # Ok::<(), ipc_testkit::PeerError>(())
/// ```
#[derive(Debug)]
pub struct Peer {
    role: String,
    child: Child,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
    control: LineReader,
    input: Option<ChildStdin>,
    stdout: Capture,
    stderr: Capture,
    ready_payload: String,
    timeout: Duration,
}

impl Peer {
    /// Options for a peer in `role`.
    pub fn builder(role: &str) -> PeerBuilder {
        PeerBuilder {
            role: role.to_owned(),
            args: Vec::new(),
            unprivileged: false,
            timeout: test_timeout(),
            tmpfs: None,
        }
    }

    /// Starts a peer in `role` with `args` and waits until it is ready.
    ///
    /// # Panics
    ///
    /// With the peer's output, if [`PeerBuilder::spawn`] fails: this is the form for tests.
    pub fn spawn(role: &str, args: &[&str]) -> Peer {
        let mut builder = Peer::builder(role);
        for arg in args {
            builder = builder.arg(*arg);
        }
        builder.spawn().unwrap_or_else(|err| panic!("{err}"))
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data the peer passed to [`PeerContext::ready_with`].
    pub fn ready_payload(&self) -> &str {
        &self.ready_payload
    }

    /// Sends a line to the peer's [`PeerContext::recv`].
    ///
    /// # Errors
    ///
    /// If the line contains `\n`, the input was closed, or the peer is gone.
    pub fn send(&mut self, line: &str) -> Result<(), PeerError> {
        if line.contains('\n') {
            return Err(self.error_only("was sent a line containing '\\n'"));
        }
        let result = match self.input.as_mut() {
            Some(input) => input.write_all(format!("{line}\n").as_bytes()),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "input closed")),
        };
        result.map_err(|err| self.failure(&format!("could not be sent {line:?}: {err}")))
    }

    /// Closes the peer's input, so that its [`PeerContext::recv`] sees end of file.
    pub fn close_input(&mut self) {
        self.input = None;
    }

    /// Receives the next line the peer sent with [`PeerContext::send`], waiting at most the
    /// timeout.
    ///
    /// # Errors
    ///
    /// If nothing arrives in time, or the peer exits first; the peer is then killed and
    /// reaped and the error carries its output.
    pub fn recv(&mut self) -> Result<String, PeerError> {
        match self.control.read_line(Deadline::after(self.timeout)) {
            Ok(Some(line)) => match line.strip_prefix("line ") {
                Some(line) => Ok(line.to_owned()),
                None => Err(self.failure(&format!("sent an unexpected control line {line:?}"))),
            },
            Ok(None) => Err(self.failure("closed its channel before sending a line")),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                let timeout = self.timeout;
                Err(self.failure(&format!("sent no line within {timeout:?}")))
            }
            Err(err) => Err(self.failure(&format!("control channel failed: {err}"))),
        }
    }

    /// Waits for the peer to exit, at most the timeout.
    ///
    /// # Errors
    ///
    /// If it is still running at the deadline; it is then killed, reaped and reported.
    pub fn wait(&mut self) -> Result<ExitStatus, PeerError> {
        match self.wait_until(Deadline::after(self.timeout)) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => {
                let timeout = self.timeout;
                Err(self.failure(&format!("did not exit within {timeout:?}")))
            }
            Err(err) => Err(self.failure(&format!("could not be waited for: {err}"))),
        }
    }

    /// Waits for the peer to exit and checks that it succeeded.
    ///
    /// # Errors
    ///
    /// If it exits with an error or a signal, or not in time; the error carries its output.
    pub fn wait_success(&mut self) -> Result<(), PeerError> {
        let status = self.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failure("failed"))
        }
    }

    /// Kills the peer (and its process group) with `SIGKILL`, as a crash would, and reaps it.
    ///
    /// # Errors
    ///
    /// If the reaping fails, which does not happen for a child that is still ours.
    pub fn kill(&mut self) -> Result<ExitStatus, PeerError> {
        self.kill_and_reap()
            .map_err(|err| self.error_only(&format!("could not be killed: {err}")))
    }

    /// Everything the peer wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        format!(
            "--- stdout of peer `{}` ---\n{}--- stderr ---\n{}",
            self.role,
            self.stdout.text(),
            self.stderr.text()
        )
    }

    fn wait_until(&mut self, deadline: Deadline) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match wait_readable(&self.pidfd, deadline) {
            Ok(()) => {
                let status = self.child.wait()?;
                self.status = Some(status);
                Ok(Some(status))
            }
            Err(err) if err.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // The child is not reaped yet, so its pid, which is also its process group id,
        // cannot have been reused: signalling the group is safe.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// Kills and reaps the peer, then describes the failure with its complete output.
    fn failure(&mut self, what: &str) -> PeerError {
        let status = match self.kill_and_reap() {
            Ok(status) => status.to_string(),
            Err(err) => format!("unknown status ({err})"),
        };
        // After the peer is gone its output pipes reach end of file, unless something it
        // started and that escaped its process group still holds them; wait briefly.
        self.stdout.wait_eof(Duration::from_secs(2));
        self.stderr.wait_eof(Duration::from_secs(2));
        PeerError {
            message: format!(
                "peer `{}` (pid {}) {what}; {status}\n{}",
                self.role,
                self.child.id(),
                self.output()
            ),
            pid: Some(self.child.id()),
        }
    }

    fn error_only(&self, what: &str) -> PeerError {
        PeerError {
            message: format!("peer `{}` (pid {}) {what}", self.role, self.child.id()),
            pid: Some(self.child.id()),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Errors cannot be reported from a destructor; the kill of an exited child fails
        // harmlessly and `wait` on our own child does not fail.
        let _ = self.kill_and_reap();
        // Let the capture threads see end of file and close their pipes, so that a leak
        // check right after the drop finds no descriptor of ours still open.
        self.stdout.wait_eof(Duration::from_secs(2));
        self.stderr.wait_eof(Duration::from_secs(2));
    }
}

impl AsFd for Peer {
    /// The peer's pidfd: readable once the peer has exited.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

/// A failed interaction with a [`Peer`]: what went wrong, the peer's exit status, stdout
/// and stderr.
pub struct PeerError {
    message: String,
    pid: Option<u32>,
}

impl PeerError {
    /// The peer's process id, if it was started. After a failure the peer is already
    /// killed and reaped.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The full description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for PeerError {
    // `unwrap()` in a test prints `Debug`: show the readable text, with its line breaks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PeerError {}

/// Collects one output stream of a peer on a background thread, so that the peer never
/// blocks on a full pipe.
#[derive(Debug)]
struct Capture {
    data: Arc<Mutex<Vec<u8>>>,
    eof: Option<Receiver<()>>,
}

impl Capture {
    fn start(stream: Option<impl Read + Send + 'static>) -> Self {
        let data = Arc::new(Mutex::new(Vec::new()));
        let Some(mut stream) = stream else {
            return Capture { data, eof: None };
        };
        let (done, eof) = mpsc::channel();
        let sink = Arc::clone(&data);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            // Close the pipe before saying so: a leak check may run right after.
            drop(stream);
            let _ = done.send(());
        });
        Capture {
            data,
            eof: Some(eof),
        }
    }

    fn wait_eof(&mut self, timeout: Duration) {
        if let Some(eof) = &self.eof {
            if eof.recv_timeout(timeout).is_ok() {
                self.eof = None;
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The pids of every peer this process started, so that the leak checker can tell which
/// leftover objects they created.
static SPAWNED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn register_spawned(pid: u32) {
    SPAWNED.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

pub(crate) fn spawned_pids() -> Vec<u32> {
    SPAWNED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The test binary, opened once, for starting unprivileged peers through
/// `/proc/self/fd/N`.
///
/// `nobody` may not be able to reach the binary by its path (a build directory under
/// `/root`, say), but it can execute the file itself (mode `0755`). The child inherits the
/// descriptor until `exec`, and the kernel resolves the path before it closes
/// close-on-exec descriptors.
static TEST_BINARY: OnceLock<Result<OwnedFd, String>> = OnceLock::new();

fn exe_for_unprivileged() -> Result<PathBuf, String> {
    let fd = TEST_BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            File::open(&exe)
                .map(OwnedFd::from)
                .map_err(|e| format!("{}: {e}", exe.display()))
        })
        .as_ref()
        .map_err(Clone::clone)?;
    Ok(PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())))
}

/// Descriptors the test kit keeps open for the life of the process, which the leak checker
/// must not report.
pub(crate) fn kit_fds() -> Vec<i32> {
    TEST_BINARY
        .get()
        .and_then(|r| r.as_ref().ok())
        .map(|fd| vec![fd.as_raw_fd()])
        .unwrap_or_default()
}

/// Runs `role` as user `nobody` in a peer, feeds it nothing, and returns the lines it sent,
/// once it has exited successfully: the way to test what an unprivileged process can do.
///
/// # Errors
///
/// If the peer cannot start (the test process is not root), fails, or does not finish in
/// time; the error carries its output.
pub fn run_unprivileged(role: &str, args: &[&str]) -> Result<Vec<String>, PeerError> {
    let mut builder = Peer::builder(role).unprivileged();
    for arg in args {
        builder = builder.arg(*arg);
    }
    let mut peer = builder.spawn()?;
    peer.close_input();
    let mut lines = Vec::new();
    loop {
        match peer.control.read_line(Deadline::after(peer.timeout)) {
            Ok(Some(line)) => match line.strip_prefix("line ") {
                Some(line) => lines.push(line.to_owned()),
                None => return Err(peer.failure(&format!("sent an unexpected line {line:?}"))),
            },
            Ok(None) => break,
            Err(err) => return Err(peer.failure(&format!("control channel failed: {err}"))),
        }
    }
    peer.wait_success()?;
    Ok(lines)
}
