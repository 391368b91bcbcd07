//! ipc-socket across real processes.

mod asynch;
mod batch;
mod fds;
mod framing;
mod identity;
mod inet;
mod kinds;
mod listener;
mod message_server;
mod server;
mod shared;
mod sigpipe;

ipc_testkit::peer_roles! {
    "hold-listener" => listener::hold_listener_role,
    "listener-left-behind" => listener::left_behind_role,
    "race-bind" => listener::race_bind_role,
    "starved-server" => listener::starved_server_role,
    "message-server" => message_server::message_server_role,
    "send-fd" => fds::send_fd_role,
    "fd-leak" => fds::fd_leak_role,
    "fd-flood-receiver" => fds::fd_flood_receiver_role,
    "hostile" => framing::hostile_role,
    "connect-as" => identity::connect_role,
    "echo-client" => server::echo_client_role,
    "sigpipe" => sigpipe::sigpipe_role,
    "flood" => shared::flood_role,
    "batch-sender" => batch::batch_sender_role,
    "async-client" => asynch::async_client_role,
    "line-sender" => asynch::line_sender_role,
    "datagram-sender" => asynch::datagram_sender_role,
    "framed-echo" => asynch::framed_echo_role,
    "slow-reader" => asynch::slow_reader_role,
    "tcp-echo" => asynch::tcp_echo_role,
    "udp-echo" => asynch::udp_echo_role,
}

/// The open descriptors of this process, to prove that nothing leaked.
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Leaves this process room for exactly `room` more descriptors: the returned files hold
/// every other number below the new soft limit (the limit is on descriptor numbers: one
/// above the highest open, every free number below it filled, then `room` given back).
///
/// # Errors
///
/// Reading `/proc/self/fd`; the `getrlimit`/`setrlimit` error.
pub fn leave_room_for(room: usize) -> std::io::Result<Vec<std::fs::File>> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    let highest = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, highest + 1 + room as u64, hard)?;
    let mut filler = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        filler.push(file);
    }
    filler.truncate(filler.len().saturating_sub(room));
    Ok(filler)
}
