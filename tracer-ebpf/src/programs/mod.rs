//! The programs, one module per event kind, and which tool's objects hold which modules.
//!
//! Each tool loads an object with its own programs only (`bin/<tool>-<transport>.rs`): aya
//! parses, links and keeps every program of the object it loads, whether the tool attaches it
//! or not. With one object holding every program, that was 1.6 of drsnoop's 2.4 MB of heap.
//! The two objects of a tool differ only in `crate::transport`.

/// The program modules of each tool's objects: the one place that says which tool has which
/// programs. A bin expands it at its root, after its transport (`#[macro_use] mod transport`),
/// so the paths are relative to `src/bin/`.
macro_rules! programs {
    (compactsnoop) => {
        #[path = "../programs/compaction.rs"]
        mod compaction;
        #[path = "../programs/extfrag.rs"]
        mod extfrag;
        #[path = "../programs/kcompactd.rs"]
        mod kcompactd;
    };
    (drsnoop) => {
        #[path = "../programs/reclaim.rs"]
        mod reclaim;
    };
    // Counting mode of both tools' programs at once.
    (memstall_exporter) => {
        programs!(compactsnoop);
        programs!(drsnoop);
    };
}

/// What every object has besides its programs and transport.
macro_rules! object_common {
    () => {
        #[cfg(not(test))]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo) -> ! {
            loop {}
        }

        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
    };
}
