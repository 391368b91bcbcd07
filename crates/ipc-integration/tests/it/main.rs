//! Scenarios across the ipc-rs crates, each between separate processes, through the public
//! APIs only.

mod cloexec;
mod crash;
mod fuzz_corpus;
mod generic;
mod hostile;
mod scenarios;
mod select;

ipc_testkit::peer_roles! {
    "send-workload" => generic::send_role,
    "hostile" => hostile::hostile_role,
    "crash-producer" => crash::producer_role,
    "crash-consumer" => crash::consumer_role,
    "crash-fd-sender" => crash::fd_sender_role,
    "crash-lock-holder" => crash::lock_holder_role,
    "crash-permit-holder" => crash::permit_holder_role,
    "crash-mid-init" => crash::mid_init_role,
    "crash-attacher" => crash::attacher_role,
    "channel-producer" => scenarios::channel_producer_role,
    "buffer-producer" => scenarios::buffer_producer_role,
    "seqpacket-client" => scenarios::seqpacket_client_role,
    "stage" => scenarios::stage_role,
    "mq-client" => scenarios::mq_client_role,
    "fd-receiver" => scenarios::fd_receiver_role,
    "shutdown-server" => scenarios::shutdown_server_role,
    "blocked-server" => scenarios::blocked_server_role,
    "select-server" => select::select_server_role,
    "sleeper" => select::sleeper_role,
}
