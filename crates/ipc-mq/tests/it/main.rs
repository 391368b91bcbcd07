//! ipc-mq across real processes: limits, waits, priorities, crashes, permissions,
//! notification.

mod asynch;
mod queue;

ipc_testkit::peer_roles! {
    "mq-create-and-die" => queue::create_and_die_role,
    "mq-left-behind" => queue::left_behind_role,
    "mq-consume" => queue::consume_role,
    "mq-send" => queue::send_role,
    "mq-open" => queue::open_role,
    "mq-notify" => queue::notify_role,
    "mq-rlimit" => queue::rlimit_role,
    "mq-umask" => queue::umask_role,
    "mq-take" => asynch::take_role,
}
