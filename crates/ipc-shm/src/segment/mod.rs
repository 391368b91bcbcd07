//! Shared-memory segments: named (`shm_open`), anonymous (`memfd_create`, sealed), and
//! received from another process.

mod memfd;
mod memory;
mod named;
mod received;
mod seals;

pub use memfd::MemfdOptions;
pub use memory::SharedMemory;
pub(crate) use memory::{SHM_DIR, SegmentName};
pub use named::ShmOptions;
pub use received::ReceiveOptions;
pub use seals::Seals;
