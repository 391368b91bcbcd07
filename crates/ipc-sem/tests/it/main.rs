//! ipc-sem across real processes: waits, bounds, crashes, permissions, corrupted memory.

mod hostile;
mod mutex;
mod named;
mod select;
mod undo;
mod unnamed;

ipc_testkit::peer_roles! {
    "named-wait" => named::wait_role,
    "named-left-behind" => named::left_behind_role,
    "named-hold" => named::hold_role,
    "named-poster" => named::poster_role,
    "named-open" => named::open_role,
    "mutex-hold" => mutex::hold_role,
    "mutex-count" => mutex::count_role,
    "undo-hold" => undo::hold_role,
    "undo-create" => undo::create_role,
    "undo-wait" => undo::wait_role,
    "unnamed-wait" => unnamed::wait_role,
    "unnamed-claim-and-hang" => unnamed::claim_and_hang_role,
    "mutex-victim" => hostile::mutex_victim_role,
    "semaphore-victim" => hostile::semaphore_victim_role,
    "mutex-hold-then-unlock" => hostile::mutex_hold_then_unlock_role,
    "semaphore-peer" => select::semaphore_peer_role,
    "mutex-peer" => select::mutex_peer_role,
}
