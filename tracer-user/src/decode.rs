//! Raw records to event structs: length checked, read unaligned (perf records are not aligned).

use aya::Pod;

/// Decodes a record of exactly one `T` (trailing alignment padding allowed). `None` for a
/// short record.
pub fn from_bytes<T: Pod>(data: &[u8]) -> Option<T> {
    if data.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: T is Pod (any bit pattern is valid) and the slice holds size_of::<T>() bytes.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
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
    }
}
