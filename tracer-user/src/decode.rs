//! Raw records to event structs: length checked, read unaligned (perf records are not aligned).

use aya::Pod;

/// Decodes a record of exactly one `T` (trailing alignment padding allowed). `None` for a
/// short record.
pub fn from_bytes<T: Pod>(data: &[u8]) -> Option<T> {
    head_from_bytes(data, size_of::<T>())
}

/// Decodes a record of at least the first `head` bytes of a `T`, the rest read as zeros (the
/// kernel sends the fields a mode fills in, first). `None` for a record shorter than that.
pub fn head_from_bytes<T: Pod>(data: &[u8], head: usize) -> Option<T> {
    if data.len() >= size_of::<T>() {
        // SAFETY: T is Pod (any bit pattern is valid) and the slice holds size_of::<T>() bytes.
        return Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) });
    }
    if data.len() < head {
        return None;
    }
    // SAFETY: all zero bits is a valid T (Pod); then its first data.len() bytes are
    // overwritten with the record's (fewer than size_of::<T>()).
    unsafe {
        let mut value = std::mem::MaybeUninit::<T>::zeroed();
        std::ptr::copy_nonoverlapping(data.as_ptr(), value.as_mut_ptr().cast::<u8>(), data.len());
        Some(value.assume_init())
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::compaction::CompactEvent;

    use super::*;

    #[test]
    fn short_and_unaligned_records() {
        assert!(from_bytes::<CompactEvent>(&[0u8; 10]).is_none());
        let ev = CompactEvent {
            tgid: 42,
            order: -1,
            ..Default::default()
        };
        // SAFETY: reading the bytes of a plain-data struct.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const CompactEvent).cast::<u8>(),
                size_of::<CompactEvent>(),
            )
        };
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(bytes);
        shifted.extend_from_slice(&[0; 4]);
        assert_eq!(from_bytes::<CompactEvent>(&shifted[1..]), Some(ev));
        // A record of the head only: the tail reads as zeros; shorter than the head, none.
        let head = CompactEvent::HEAD_LEN;
        assert_eq!(
            head_from_bytes::<CompactEvent>(&shifted[1..1 + head], head),
            Some(CompactEvent {
                work: Default::default(),
                zone: Default::default(),
                ..ev
            })
        );
        assert!(head_from_bytes::<CompactEvent>(&shifted[1..head], head).is_none());
        assert!(from_bytes::<CompactEvent>(&shifted[1..1 + head]).is_none());
    }
}
