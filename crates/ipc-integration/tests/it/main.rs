//! Scenarios across the ipc-rs crates, each between separate processes, through the public
//! APIs only.

mod crash;
mod generic;

ipc_testkit::peer_roles! {
    "send-workload" => generic::send_role,
    "crash-producer" => crash::producer_role,
    "crash-consumer" => crash::consumer_role,
    "crash-fd-sender" => crash::fd_sender_role,
    "crash-lock-holder" => crash::lock_holder_role,
    "crash-permit-holder" => crash::permit_holder_role,
    "crash-mid-init" => crash::mid_init_role,
}
