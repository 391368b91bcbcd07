//! Seals on a memfd: what the kernel enforces against everyone holding the descriptor.

use nix::fcntl::SealFlag;

/// Seals on a memfd (`F_ADD_SEALS`): promises the kernel enforces against everyone holding
/// the descriptor, including a hostile peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seals(pub(crate) SealFlag);

impl Seals {
    /// No seals.
    pub const NONE: Seals = Seals(SealFlag::empty());
    /// The size cannot shrink: a peer cannot make this process's accesses fault (SIGBUS).
    pub const SHRINK: Seals = Seals(SealFlag::F_SEAL_SHRINK);
    /// The size cannot grow.
    pub const GROW: Seals = Seals(SealFlag::F_SEAL_GROW);
    /// The contents cannot change (no writable mapping may exist when it is added).
    pub const WRITE: Seals = Seals(SealFlag::F_SEAL_WRITE);
    /// New writable mappings and writes are refused, while mappings made before (the
    /// creator's) keep writing: "I write, you only read". Linux 5.1.
    pub const FUTURE_WRITE: Seals = Seals(SealFlag::F_SEAL_FUTURE_WRITE);
    /// No more seals can be added or removed.
    pub const SEAL: Seals = Seals(SealFlag::F_SEAL_SEAL);

    /// Both seals together.
    #[must_use]
    pub const fn with(self, other: Seals) -> Seals {
        Seals(self.0.union(other.0))
    }

    /// Whether all of `other` is set.
    pub const fn contains(self, other: Seals) -> bool {
        self.0.contains(other.0)
    }

    /// Whether the contents can no longer change through new mappings.
    pub const fn forbids_writing(self) -> bool {
        self.0
            .intersects(SealFlag::F_SEAL_WRITE.union(SealFlag::F_SEAL_FUTURE_WRITE))
    }
}

impl Default for Seals {
    /// Shrink, grow and seal: the size is fixed for good.
    fn default() -> Self {
        Seals::SHRINK.with(Seals::GROW).with(Seals::SEAL)
    }
}
