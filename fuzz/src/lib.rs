//! What the fuzz targets share: the steps the tools take with a raw record from the kernel,
//! each checked for what it must keep on any input. The targets drive the library's own
//! printers (`tracer_user::{compaction, reclaim, extfrag}::printer::Printer`) as the event loop
//! does, into memory, in both output styles, and check what they wrote (`check_output`).
//!
//! Names are those the tools print: enumerations read from the running kernel's BTF by
//! `tracer_user::layout`, or a fixed table of 6.x names where there is no BTF. Zone spans come
//! from `tracer-user/test_data/zoneinfo` (a real machine's), fixed so that a crashing input
//! reproduces anywhere.

use std::{fmt::Debug, sync::OnceLock};

use aya::Pod;
use tracer_user::{
    btf::Btf,
    clock::WallClock,
    decode,
    layout::{self, EnumNames},
    output::{Output, Style, comm_str},
    zones::{self, ZoneInfo},
};

/// The two output styles, each into memory: columns, and JSON Lines with a fixed clock.
pub fn outputs(tool: &'static str) -> [Output<Vec<u8>>; 2] {
    [
        Output::new(Vec::new(), tool, Style::Columns),
        Output::new(
            Vec::new(),
            tool,
            Style::Json(WallClock::with_offset(1_795_375_805_000_000_000)),
        ),
    ]
}

/// What a printer wrote for one record: nothing (the record was too short, or filtered out),
/// or exactly one line, which in columns holds no control character and in JSON is an object
/// whose `event` is `event` and whose `ts_ns` is a number.
pub fn check_output(out: Output<Vec<u8>>, event: &str) {
    let json = out.is_json();
    let bytes = out.into_inner().expect("writing to memory cannot fail");
    if bytes.is_empty() {
        return;
    }
    let text = std::str::from_utf8(&bytes).expect("output is UTF-8");
    let line = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no newline at the end of {text:?}"));
    assert!(!line.contains('\n'), "more than one line: {text:?}");
    if json {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["event"], event, "{line}");
        assert!(v["ts_ns"].is_u64(), "{line}");
        assert!(v["time"].is_string(), "{line}");
    } else {
        assert!(
            !line.contains(char::is_control),
            "control character in {line:?}"
        );
    }
}

/// The enumerations a row names.
pub struct Names {
    pub zones: EnumNames,
    pub results: EnumNames,
    pub migratetypes: EnumNames,
}

/// The running kernel's names (from BTF, as the tools read them), else a fixed table.
pub fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let from_btf = Btf::from_sys_fs().ok().and_then(|btf| {
            Some(Names {
                zones: layout::zone_names(&btf).ok()?,
                results: layout::compact_result_names(&btf).ok()?,
                migratetypes: layout::migratetype_names(&btf).ok()?,
            })
        });
        from_btf.unwrap_or_else(|| {
            let table = |names: &[&str]| {
                EnumNames::new(
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| ((*n).to_owned(), i as i64)),
                    |n| Some(n.to_owned()),
                )
            };
            Names {
                zones: table(&[
                    "ZONE_DMA",
                    "ZONE_DMA32",
                    "ZONE_NORMAL",
                    "ZONE_MOVABLE",
                    "ZONE_DEVICE",
                ]),
                results: table(&[
                    "not_suitable_zone",
                    "skipped",
                    "deferred",
                    "no_suitable_page",
                    "continue",
                    "complete",
                    "partial_skipped",
                    "contended",
                    "success",
                ]),
                migratetypes: table(&[
                    "Unmovable",
                    "Movable",
                    "Reclaimable",
                    "HighAtomic",
                    "CMA",
                    "Isolate",
                ]),
            }
        })
    })
}

/// Zones of a real machine's `/proc/zoneinfo` (DMA, DMA32, Normal, and empty Movable and Device).
pub fn zoneinfo() -> &'static [ZoneInfo] {
    static ZONES: OnceLock<Vec<ZoneInfo>> = OnceLock::new();
    ZONES.get_or_init(|| zones::parse(include_str!("../../tracer-user/test_data/zoneinfo")))
}

/// `tracer_user::decode::from_bytes::<T>`, checked: `None` exactly for a record shorter than `T`;
/// otherwise the struct holds the record's first `size_of::<T>()` bytes, whatever follows
/// them and at any alignment (perf records are not aligned).
pub fn decode<T: Pod + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    let size = size_of::<T>();
    let ev = decode::from_bytes::<T>(data);
    assert_eq!(
        ev.is_some(),
        data.len() >= size,
        "{} bytes decoded as {ev:?}",
        data.len()
    );
    let mut shifted = vec![0u8; data.len() + 8];
    for shift in 1..8 {
        shifted[shift..shift + data.len()].copy_from_slice(data);
        let again = decode::from_bytes::<T>(&shifted[shift..shift + data.len()]);
        assert_eq!(again, ev, "decoded differently at offset {shift}");
    }
    if let Some(ev) = &ev {
        // SAFETY: the event structs are `#[repr(C)]` without padding (their layout is pinned in
        // tracer-common), so every byte of `ev` is initialized.
        let bytes = unsafe { std::slice::from_raw_parts((ev as *const T).cast::<u8>(), size) };
        assert_eq!(
            bytes,
            &data[..size],
            "the struct does not hold the record's bytes"
        );
    }
    ev
}

/// `tracer_user::output::comm_str`, as the tools show COMM and match `-n NAME`: the bytes up to
/// the first NUL, exactly when they are UTF-8 (control characters as `?`), never a NUL or other
/// control character, at most one character per byte.
pub fn comm(raw: &[u8]) -> String {
    let shown = comm_str(raw);
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    assert!(!shown.contains('\0'), "NUL in COMM {shown:?}");
    assert!(
        !shown.contains(char::is_control),
        "control character in {shown:?}"
    );
    match std::str::from_utf8(&raw[..end]) {
        Ok(s) => assert_eq!(shown, s.replace(char::is_control, "?")),
        Err(_) => assert!(
            shown.contains(char::REPLACEMENT_CHARACTER),
            "{raw:?} shown as {shown:?}"
        ),
    }
    assert!(shown.chars().count() <= end, "{raw:?} shown as {shown:?}");
    // The `-n NAME` filter.
    let _ = shown.contains("wl-");
    shown.into_owned()
}

/// `tracer_user::zones::find`, as the tools place a PFN: the first zone spanning it, or none
/// when no zone does.
pub fn zone_of(zones: &[ZoneInfo], pfn: u64) -> Option<&ZoneInfo> {
    let found = zones::find(zones, pfn);
    let first = zones
        .iter()
        .position(|z| z.spanned > 0 && pfn >= z.start_pfn && pfn - z.start_pfn < z.spanned);
    assert_eq!(
        found.map(|z| z as *const ZoneInfo),
        first.map(|i| &zones[i] as *const ZoneInfo),
        "pfn {pfn:#x}"
    );
    found
}
