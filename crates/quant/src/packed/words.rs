//! Storage of packed weights: zeroed, page-aligned anonymous memory
//! (`mmap`), advised to use transparent huge pages where the kernel offers
//! them (`madvise(MADV_HUGEPAGE)`; Linux's default THP mode is "madvise").
//!
//! Why not a `Vec<u64>`: an 8B model packs about 1 GB at load; with 4 KiB
//! pages that is 260 thousand page faults (seconds of kernel time) and, while
//! generating, a TLB miss every 4 KiB of the weights streamed per token.

use memmap2::MmapMut;

#[derive(Debug)]
pub(super) struct Words {
    map: MmapMut,
    len: usize,
}

impl Words {
    /// `len` zeroed words; `None` if the memory cannot be mapped.
    pub(super) fn zeroed(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(8)?.max(8);
        let map = MmapMut::map_anon(bytes).ok()?;
        #[cfg(target_os = "linux")]
        // A hint: without huge pages the memory works the same, only slower.
        let _ = map.advise(memmap2::Advice::HugePage);
        Some(Self { map, len })
    }

    // Only the x86 kernels read packed words (elsewhere nothing packs).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn as_slice(&self) -> &[u64] {
        // SAFETY: the mapping is page-aligned (so aligned for u64), at least
        // `8·len` bytes long, zero-initialized by the OS, and borrowed for
        // the lifetime of `&self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<u64>(), self.len) }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [u64] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().cast::<u64>(), self.len) }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}
