//! Reuse of the data path's megabyte buffers (fetch responses, segment chunks): a bounded
//! process-wide free list, so that each is not a fresh allocation whose pages the kernel zeroes.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers smaller than this are left to the allocator.
const SMALLEST: usize = 256 * 1024;
/// Buffers larger than this (a rare oversized fetch) are not kept.
const LARGEST: usize = 16 * 1024 * 1024;
/// Bytes of free buffers kept at most.
const KEPT_BYTES: usize = 48 * 1024 * 1024;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `capacity` bytes: the smallest free one that fits, or a
/// new one.
pub fn take(capacity: usize) -> Vec<u8> {
    if capacity >= SMALLEST {
        let mut free = FREE.lock().expect("buffer list lock");
        let fitting = free.iter().enumerate().filter(|(_, buffer)| buffer.capacity() >= capacity);
        if let Some(index) = fitting.min_by_key(|(_, buffer)| buffer.capacity()).map(|(index, _)| index) {
            let mut buffer = free.swap_remove(index);
            buffer.clear();
            return buffer;
        }
    }
    Vec::with_capacity(capacity)
}

/// Returns `buffer` for reuse (or frees it when too small, too large, or enough are kept).
pub fn give_back(buffer: Vec<u8>) {
    if !(SMALLEST..=LARGEST).contains(&buffer.capacity()) {
        return;
    }
    let mut free = FREE.lock().expect("buffer list lock");
    let kept: usize = free.iter().map(Vec::capacity).sum();
    if kept + buffer.capacity() <= KEPT_BYTES {
        free.push(buffer);
    }
}

/// `buffer` as shared bytes that give it back once the last slice of them is dropped.
pub fn shared(buffer: Vec<u8>) -> Bytes {
    Bytes::from_owner(Returned(buffer))
}

struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_handed_out_again_and_small_or_huge_ones_are_not_kept() {
        let mut buffer = take(3 * 1024 * 1024);
        buffer.resize(100, 7);
        let address = buffer.as_ptr();
        let bytes = shared(buffer);
        let slice = bytes.slice(10..20);
        drop(bytes);
        let other = take(3 * 1024 * 1024);
        assert_ne!(other.as_ptr(), address, "still held by a slice");
        drop(other);
        drop(slice);
        let again = take(2 * 1024 * 1024);
        assert_eq!(again.as_ptr(), address, "the smallest fitting free buffer");
        assert!(again.is_empty() && again.capacity() >= 3 * 1024 * 1024);
        give_back(Vec::with_capacity(1024));
        give_back(Vec::with_capacity(LARGEST + 1));
        assert!(FREE.lock().unwrap().iter().all(|b| (SMALLEST..=LARGEST).contains(&b.capacity())));
    }
}
