//! What the mechanism crates that meet in shared memory agree on: which types may live
//! there, and what a shared region is.

/// A type that may be placed in memory another process writes: `#[repr(C)]` (or a
/// primitive), no pointers or references, no padding that matters, and **every bit pattern
/// a valid value**, so that nothing a hostile peer writes can make reading it undefined
/// behaviour.
///
/// Implemented for the integer and floating-point types and for arrays of them. `bool`,
/// `char`, enums, references and `Option`s are deliberately not: a peer could write a bit
/// pattern that is not a valid value.
///
/// ```
/// use ipc_core::ShmSafe;
///
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Quote {
///     price: u64,
///     volume: u32,
///     venue: [u8; 4],
/// }
///
/// // SAFETY: `repr(C)`, only integers and byte arrays, every bit pattern valid, and no
/// // padding (8 + 4 + 4 bytes).
/// unsafe impl ShmSafe for Quote {}
/// const _: () = assert!(std::mem::size_of::<Quote>() == 16);
/// ```
///
/// # Safety
///
/// Implement it only for types that satisfy all of the above; the shared-memory crates
/// read values of such types straight out of memory a peer may have scribbled on.
pub unsafe trait ShmSafe: Copy + Send + Sync + 'static {}

macro_rules! shm_safe {
    ($($ty:ty),*) => {
        // SAFETY: every bit pattern of these primitive types is a valid value, and they
        // hold no pointers.
        $(unsafe impl ShmSafe for $ty {})*
    };
}

shm_safe!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: the unit type has no bytes, so no bit pattern can be invalid; it is the data of
// a lock that guards nothing but itself.
unsafe impl ShmSafe for () {}

// SAFETY: an array of `ShmSafe` values has no padding between elements and every bit
// pattern of it is an array of valid elements.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// A region of memory shared with other processes: where it starts and how long it is.
///
/// Mechanisms that place their state in shared memory (a process-shared semaphore or
/// mutex, a channel) take any `SharedRegion`, so that they do not depend on the crate that
/// maps it.
///
/// # Safety
///
/// `as_ptr()` must point to `len()` bytes that stay mapped and readable (and writable when
/// `is_writable()` says so), at the same address, for as long as the implementing value
/// lives.
pub unsafe trait SharedRegion {
    /// The first byte of the region.
    fn as_ptr(&self) -> *mut u8;

    /// The length of the region in bytes.
    fn len(&self) -> usize;

    /// Whether the region may be written through [`as_ptr`](SharedRegion::as_ptr).
    fn is_writable(&self) -> bool;

    /// True for an empty region.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: the referenced region outlives the reference, so its guarantees hold for as long
// as the reference does.
unsafe impl<T: SharedRegion + ?Sized> SharedRegion for &T {
    fn as_ptr(&self) -> *mut u8 {
        (**self).as_ptr()
    }

    fn len(&self) -> usize {
        (**self).len()
    }

    fn is_writable(&self) -> bool {
        (**self).is_writable()
    }
}

// SAFETY: the region lives as long as any `Arc` to it, so its guarantees hold for as long
// as this one does.
unsafe impl<T: SharedRegion + ?Sized> SharedRegion for std::sync::Arc<T> {
    fn as_ptr(&self) -> *mut u8 {
        (**self).as_ptr()
    }

    fn len(&self) -> usize {
        (**self).len()
    }

    fn is_writable(&self) -> bool {
        (**self).is_writable()
    }
}
