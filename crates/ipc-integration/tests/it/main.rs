//! Scenarios across the ipc-rs crates, each between separate processes, through the public
//! APIs only.

mod generic;

ipc_testkit::peer_roles! {
    "send-workload" => generic::send_role,
}
