//! ipc-pipe across real processes.

mod anon;
mod asynch;
mod child;
mod fifo;
mod framing;
mod sigpipe;
mod zerocopy;

ipc_testkit::peer_roles! {
    "sigpipe-default" => sigpipe::sigpipe_default_role,
    "fifo-reader" => fifo::fifo_reader_role,
    "fifo-left-behind" => fifo::left_behind_role,
    "fifo-open-foreign" => fifo::open_foreign_role,
    "fifo-open-late" => fifo::open_late_role,
    "frame-then-die" => framing::frame_then_die_role,
    "many-writers" => framing::many_writers_role,
    "fifo-writer" => asynch::fifo_writer_role,
    "fifo-digest" => asynch::fifo_digest_role,
    "fifo-pattern-writer" => asynch::fifo_pattern_writer_role,
}
