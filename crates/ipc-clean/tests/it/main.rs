//! ipc-clean across real processes: what it removes, and what a live process keeps.

mod clean;

ipc_testkit::peer_roles! {
    "idle" => clean::idle,
    "undo-creator" => clean::undo_creator,
    "hold-inside" => clean::hold_inside,
}
