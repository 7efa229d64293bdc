//! A global allocator that turns a hostile "array of two billion elements" into a cheap
//! address-space reservation instead of an abort.
//!
//! `kafka-protocol` (generated code we do not edit) sizes a `Vec` from the element count it
//! reads off the wire before reading the elements. A frame that claims 2^31 elements makes it
//! ask for hundreds of gigabytes; the system allocator refuses and Rust aborts the process,
//! which would let any client kill the broker. Decoding then fails a moment later because the
//! frame holds too few bytes, and the vector is dropped untouched.
//!
//! So allocations of `HUGE_BYTES` or more are served by an anonymous `mmap` with
//! `MAP_NORESERVE`: the kernel hands out address space without committing memory, pages are
//! only backed when written, and the decoder writes at most as many elements as the frame
//! holds (frames are bounded by `socket.request.max.bytes`). Everything smaller goes to
//! mimalloc, which keeps freed memory for reuse: with the C library's allocator, every
//! multi-megabyte fetch buffer came back from the kernel as fresh pages, and page faults
//! showed up as a large share of broker CPU on consume-heavy runs. This allocator owns
//! nothing else.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};

/// Where allocations below `HUGE_BYTES` go.
static SMALL: MiMalloc = MiMalloc;

/// Allocations at least this large are reserved with `mmap` instead of committed by malloc.
pub const HUGE_BYTES: usize = 1 << 30;

/// The allocator; install it with `#[global_allocator]` in a binary.
pub struct ReservingAllocator;

unsafe impl GlobalAlloc for ReservingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE_BYTES || layout.align() > page_bytes() {
            return unsafe { SMALL.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < HUGE_BYTES || layout.align() > page_bytes() {
            return unsafe { SMALL.dealloc(ptr, layout) };
        }
        // SAFETY: ptr and size are exactly those of a mapping made in `alloc`.
        unsafe { libc::munmap(ptr.cast(), layout.size()) };
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let huge = |size: usize| size >= HUGE_BYTES && layout.align() <= page_bytes();
        if !huge(layout.size()) && !huge(new_size) {
            return unsafe { SMALL.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the new layout has the old alignment and a non-zero size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            let len = layout.size().min(new_size);
            // SAFETY: both blocks are valid for `len` bytes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new_ptr, len) };
            unsafe { self.dealloc(ptr, layout) };
        }
        new_ptr
    }
}

fn page_bytes() -> usize {
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reservation_succeeds_and_is_usable() {
        let layout = Layout::from_size_align(512 << 30, 8).unwrap();
        let a = ReservingAllocator;
        unsafe {
            let p = a.alloc(layout);
            assert!(
                !p.is_null(),
                "512 GiB of address space should be reservable"
            );
            p.write(7);
            p.add(layout.size() - 1).write(9);
            assert_eq!(p.read(), 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn realloc_across_the_threshold_keeps_contents() {
        let a = ReservingAllocator;
        unsafe {
            let small = Layout::from_size_align(16, 8).unwrap();
            let p = a.alloc(small);
            p.copy_from_nonoverlapping(b"0123456789abcdef".as_ptr(), 16);
            let q = a.realloc(p, small, HUGE_BYTES);
            assert_eq!(std::slice::from_raw_parts(q, 16), b"0123456789abcdef");
            let big = Layout::from_size_align(HUGE_BYTES, 8).unwrap();
            let r = a.realloc(q, big, 32);
            assert_eq!(std::slice::from_raw_parts(r, 16), b"0123456789abcdef");
            a.dealloc(r, Layout::from_size_align(32, 8).unwrap());
        }
    }
}
