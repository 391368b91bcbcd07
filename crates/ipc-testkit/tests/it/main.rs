//! The test kit's own tests: each piece proven across real processes.

mod leaks;
mod peers;
mod storm;

ipc_testkit::peer_roles! {
    "echo" => peers::echo,
    "hang" => peers::hang,
    "fail" => peers::fail,
    "panic" => peers::panic,
    "middle" => peers::middle,
    "idle" => peers::idle,
    "whoami" => peers::whoami,
    "list-fds" => peers::list_fds,
    "df" => peers::df,
    "leaky" => leaks::leaky,
}
