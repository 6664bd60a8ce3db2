//! tracefs: where it is (mounting it if nobody has), and the record layouts in its `format` files.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use tracer_common::record::RecordField;

use crate::printfmt::{self, Helper};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount point, mounting tracefs at `/sys/kernel/tracing` when it is not mounted.
pub fn root() -> Result<PathBuf> {
    if let Some(found) = CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
    {
        return Ok(found.to_owned());
    }
    let target = Path::new(CANDIDATES[0]);
    let c_target = CString::new(CANDIDATES[0])?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c_target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 || !target.join("events").is_dir() {
        bail!(
            "tracefs is not mounted and mounting it at {} failed ({}); mount it with \
             `mount -t tracefs nodev {}`",
            target.display(),
            std::io::Error::last_os_error(),
            target.display()
        );
    }
    Ok(target.to_owned())
}

/// Whether this kernel has the tracepoint `system:event`. Where tracefs cannot be found, it
/// cannot tell: true, and attaching decides.
pub fn tracepoint_exists(system: &str, event: &str) -> bool {
    match root() {
        Ok(root) => root.join("events").join(system).join(event).is_dir(),
        Err(_) => true,
    }
}

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// A tracepoint's `format` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Format {
    pub id: u32,
    pub fields: Vec<Field>,
    pub print_fmt: String,
}

impl Format {
    pub fn read(tracefs: &Path, system: &str, event: &str) -> Result<Format> {
        let path = tracefs
            .join("events")
            .join(system)
            .join(event)
            .join("format");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "tracepoint {system}:{event} is not available ({})",
                path.display()
            )
        })?;
        Ok(Format::parse(&text))
    }

    pub fn parse(text: &str) -> Format {
        let mut format = Format::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(id) = line.strip_prefix("ID:") {
                format.id = id.trim().parse().unwrap_or(0);
            } else if let Some(fmt) = line.strip_prefix("print fmt:") {
                format.print_fmt = fmt.trim().to_owned();
            } else if line.starts_with("field:")
                && let Some(field) = parse_field(line)
            {
                format.fields.push(field);
            }
        }
        format
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Where a classic program finds `names` in this record, in that order. A name with a leading
/// `?` may be missing (it then reads as absent).
pub fn record_fields(format: &Format, names: &[&str]) -> Result<Vec<RecordField>> {
    names
        .iter()
        .map(|name| {
            let (optional, name) = match name.strip_prefix('?') {
                Some(n) => (true, n),
                None => (false, *name),
            };
            let Some(f) = format.field(name) else {
                if optional {
                    return Ok(RecordField::ABSENT);
                }
                bail!("its record has no field `{name}`");
            };
            match (u16::try_from(f.offset), f.size) {
                (Ok(offset), 1 | 2 | 4 | 8) => Ok(RecordField {
                    offset,
                    size: f.size as u8,
                    signed: u8::from(f.signed),
                }),
                _ => bail!(
                    "its field `{name}` ({} bytes at {}) is not an integer this tool reads",
                    f.size,
                    f.offset
                ),
            }
        })
        .collect()
}

/// The value names a print format gives `field` (e.g. `REC->status`) through
/// `__print_symbolic(field, {0, "name"}, ...)`: how the kernel itself names them. A value that
/// is not a constant expression (an enum name the format does not define) is left out.
pub fn symbols(print_fmt: &str, field: &str) -> Vec<(String, i64)> {
    let Some(table) = printfmt::tables(print_fmt, Helper::Symbolic)
        .into_iter()
        .find(|t| t.field == field)
    else {
        return Vec::new();
    };
    table
        .entries
        .iter()
        .filter_map(|e| Some((e.name.to_owned(), e.eval().ok()?.as_i64())))
        .collect()
}

/// `field:unsigned long pfn;    offset:8;    size:8;    signed:0;` (tab-separated)
fn parse_field(line: &str) -> Option<Field> {
    let mut parts = line.split(';').map(str::trim);
    let decl = parts.next()?.strip_prefix("field:")?;
    let name = decl.rsplit([' ', '*']).next()?;
    let name = name.split('[').next()?.to_owned();
    let mut field = Field {
        name,
        offset: 0,
        size: 0,
        signed: false,
    };
    for part in parts {
        if let Some((key, value)) = part.split_once(':') {
            match key {
                "offset" => field.offset = value.parse().ok()?,
                "size" => field.size = value.parse().ok()?,
                "signed" => field.signed = value == "1",
                _ => {}
            }
        }
    }
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_extfrag_format() {
        let f = Format::parse(include_str!("../test_data/mm_page_alloc_extfrag.format"));
        assert_eq!(f.id, 650);
        assert_eq!(f.field("pfn").map(|f| (f.offset, f.size)), Some((8, 8)));
        assert_eq!(
            f.field("change_ownership").map(|f| (f.offset, f.signed)),
            Some((32, true))
        );
        assert!(f.print_fmt.starts_with("\"page=%p"));
    }

    #[test]
    fn reads_symbolic_names_from_a_print_format() {
        let fmt = r#""mode=%s status=%s", REC->sync ? "sync" : "async", __print_symbolic(REC->status, {1, "skipped"}, {2, "deferred"}, {0x8, "success"}, {0, "not_suitable_zone"}, {FOO, "foo"}, {(1 << 4) | 1u, "expr"}), REC->x"#;
        assert_eq!(
            symbols(fmt, "REC->status"),
            [
                ("skipped".to_owned(), 1),
                ("deferred".to_owned(), 2),
                ("success".to_owned(), 8),
                ("not_suitable_zone".to_owned(), 0),
                ("expr".to_owned(), 17)
            ]
        );
        assert!(symbols(fmt, "REC->idx").is_empty());
        let end = Format::parse(include_str!("../test_data/mm_compaction_end.format"));
        let status = symbols(&end.print_fmt, "REC->status");
        assert_eq!(status.len(), 9);
        assert!(status.contains(&("contended".to_owned(), 7)));
    }
}
