//! ipc-socket across real processes.

mod asynch;
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
    "async-client" => asynch::async_client_role,
    "line-sender" => asynch::line_sender_role,
    "datagram-sender" => asynch::datagram_sender_role,
    "framed-echo" => asynch::framed_echo_role,
    "tcp-echo" => asynch::tcp_echo_role,
    "udp-echo" => asynch::udp_echo_role,
}

/// The open descriptors of this process, to prove that nothing leaked.
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
