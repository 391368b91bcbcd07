//! Shared-memory segments: named (`shm_open`), anonymous (`memfd_create`, sealed), and
//! received from another process.

mod memfd;
mod memory;
mod named;
mod received;
mod seals;

pub use memfd::MemfdOptions;
pub(crate) use memory::SegmentName;
pub use memory::SharedMemory;
pub use named::ShmOptions;
pub use received::ReceiveOptions;
pub use seals::Seals;
