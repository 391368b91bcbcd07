//! ipc-shm across real processes, with peers that attack the segments.

mod attacks;
mod channel;
mod channel_async;
mod channel_crash;
mod channel_many;
mod channel_select;
mod channel_sides;
mod named;

ipc_testkit::peer_roles! {
    "receive-and-attack" => attacks::receive_and_attack_role,
    "open-wait" => named::open_wait_role,
    "create-and-hang" => named::create_and_hang_role,
    "squat" => named::squat_role,
    "fill-shm" => named::fill_shm_role,
    "sparse-open" => named::sparse_open_role,
    "channel-producer" => channel_crash::producer_role,
    "channel-consumer" => channel_crash::consumer_role,
    "scribbler" => channel_crash::scribbler_role,
    "claim-and-hang" => channel_sides::claim_and_hang_role,
    "take-over" => channel_sides::take_over_role,
    "attach-and-hang" => channel_sides::attach_and_hang_role,
    "poke" => channel_sides::poke_role,
    "create-later" => channel_sides::create_later_role,
    "attach-handed" => channel_sides::attach_handed_role,
    "armed-producer" => channel_select::armed_producer_role,
    "channel-drain" => channel_select::drain_role,
    "armed-consumer" => channel_select::armed_consumer_role,
    "many-consumers" => channel_many::many_consumers_role,
    "many-producers" => channel_many::many_producers_role,
    "polled-consumers" => channel_many::polled_consumers_role,
}
