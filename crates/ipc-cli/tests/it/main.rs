//! `ipc` used as a user would: the binary run against live objects, objects that killed
//! processes left, and another user's objects.

mod cli;
mod messages;

ipc_testkit::peer_roles! {
    "hold" => cli::hold,
}
