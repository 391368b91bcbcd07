//! ipc-shm across real processes, with peers that attack the segments.

mod attacks;
mod channel;
mod channel_crash;
mod named;

ipc_testkit::peer_roles! {
    "receive-and-attack" => attacks::receive_and_attack_role,
    "open-wait" => named::open_wait_role,
    "create-and-hang" => named::create_and_hang_role,
    "squat" => named::squat_role,
    "fill-shm" => named::fill_shm_role,
    "channel-producer" => channel_crash::producer_role,
    "channel-consumer" => channel_crash::consumer_role,
    "scribbler" => channel_crash::scribbler_role,
}
