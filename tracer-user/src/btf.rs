//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find struct
//! member offsets, array lengths, enum values and tracepoint prototypes.
//!
//! aya parses BTF too, but keeps its type accessors private to the crate; btf-rs is
//! LGPL-licensed. This reader indexes the type section once and resolves names on demand.
//!
//! The kernel's BTF is about 5.5 MB. Since 6.16 the kernel lets a process map it read-only
//! (`MAP_PRIVATE`): the mapping shows the kernel's own copy, so reading it copies nothing and
//! adds nothing to the process's resident memory. Older kernels refuse, and the file is read
//! into memory as before. The index keeps the position of every `INDEX_STRIDE`th type only,
//! and grows as far as the lookups need: what the tools look up lies in the first fifth of the
//! kernel's 3 MB of types (6.18), and the first touch of that memory is most of the cost of a
//! walk (0.7 ms to index every type on a 2-CPU VM, against 0.05 ms for a later walk).

use std::{
    borrow::Cow,
    fs::File,
    io::Read as _,
    ops::ControlFlow,
    os::fd::AsRawFd as _,
    path::Path,
    sync::{Mutex, MutexGuard},
};

use thiserror::Error;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("the kernel's BTF has no {kind} named `{name}`")]
    NotFound { kind: &'static str, name: String },
    #[error("`{owner}` has no member `{member}` in the kernel's BTF")]
    NoMember { owner: String, member: String },
}

const MAGIC: u16 = 0xeb9f;

/// BTF kinds this reader tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    Datasec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

impl Kind {
    fn from_raw(k: u32) -> Option<Kind> {
        use Kind::*;
        Some(match k {
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => Datasec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }
}

/// One member of a struct or union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: Cow<'a, str>,
    pub type_id: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
}

/// Types per entry of the index: a type's header is found by walking at most this many
/// types from the last indexed one.
const INDEX_STRIDE: usize = 32;

/// The bytes of a BTF blob: the kernel's mapped read-only, or a copy on the heap.
enum Data {
    Mapped { ptr: *const u8, len: usize },
    Owned(Vec<u8>),
}

impl Data {
    /// Maps `file` read-only, when the kernel allows it (/sys/kernel/btf since 6.16).
    fn map(file: &File) -> Option<Data> {
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private read-only mapping of a file we hold open; it is only read,
        // and unmapped once in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Data::Mapped {
            ptr: ptr as *const u8,
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: `len` readable bytes, mapped until Drop.
            Data::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            Data::Owned(v) => v,
        }
    }
}

// SAFETY: the mapping is read-only and owned: sharing or moving it is like sharing or moving
// the Vec.
unsafe impl Send for Data {}
unsafe impl Sync for Data {}

impl Drop for Data {
    fn drop(&mut self) {
        if let Data::Mapped { ptr, len } = *self {
            // SAFETY: the mapping made in `map`, no longer borrowed.
            unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
        }
    }
}

/// The kernel's BTF, indexed as far as it was looked into.
pub struct Btf {
    data: Data,
    types_start: usize,
    types_end: usize,
    strings: (usize, usize),
    index: Mutex<Index>,
}

/// The types walked so far, each header checked.
struct Index {
    /// Byte position (from `types_start`) of types 1, 1 + INDEX_STRIDE, 1 + 2 * INDEX_STRIDE...
    starts: Vec<u32>,
    /// Types checked (the highest id walked).
    count: u32,
    /// Byte position of the next type's header.
    next: usize,
    /// Why the walk cannot go on before the end of the type section, if a header is malformed.
    broken: Option<&'static str>,
}

/// Size of a type's header and the data after it, from its raw kind and `vlen`.
fn type_size(raw_kind: u32, vlen: usize) -> usize {
    let (fixed, per_entry) = DATA_SIZE[raw_kind as usize & 0x1f];
    12 + fixed as usize + per_entry as usize * vlen
}

/// Bytes after a type's header by raw kind: fixed, and per entry of its `vlen` (a table, as
/// walks compute it for every type they pass).
const DATA_SIZE: [(u8, u8); 32] = {
    let mut t = [(0, 0); 32];
    t[Kind::Int as usize] = (4, 0);
    t[Kind::Var as usize] = (4, 0);
    t[Kind::DeclTag as usize] = (4, 0);
    t[Kind::Array as usize] = (12, 0);
    t[Kind::Struct as usize] = (0, 12);
    t[Kind::Union as usize] = (0, 12);
    t[Kind::Datasec as usize] = (0, 12);
    t[Kind::Enum64 as usize] = (0, 12);
    t[Kind::Enum as usize] = (0, 8);
    t[Kind::FuncProto as usize] = (0, 8);
    t
};

impl Btf {
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        Btf::from_file(Path::new(VMLINUX))
    }

    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let read_error = |source| BtfError::Read {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(read_error)?;
        let data = match Data::map(&file) {
            Some(mapped) => mapped,
            None => {
                let mut data = Vec::new();
                file.read_to_end(&mut data).map_err(read_error)?;
                Data::Owned(data)
            }
        };
        Btf::open(data)
    }

    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        Btf::open(Data::Owned(data))
    }

    fn open(data: Data) -> Result<Btf, BtfError> {
        let bytes = data.bytes();
        let u32_at = |pos: usize| -> Result<u32, BtfError> {
            bytes
                .get(pos..pos + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(BtfError::Malformed("truncated header"))
        };
        if bytes.len() < 24 || u16::from_le_bytes([bytes[0], bytes[1]]) != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = (hdr_len + str_off, hdr_len + str_off + str_len);
        if types_end > bytes.len() || strings.1 > bytes.len() {
            return Err(BtfError::Malformed("sections beyond the end of the data"));
        }
        Ok(Btf {
            data,
            types_start,
            types_end,
            strings,
            index: Mutex::new(Index {
                starts: Vec::new(),
                count: 0,
                next: types_start,
                broken: None,
            }),
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while it was held left an index that is still consistent: each step updates
        // it only once the header is checked.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the next type's header and adds it to the index: its id, raw kind and position,
    /// or None at the end of the types or at a malformed header.
    fn step(&self, index: &mut Index) -> Option<(u32, u32, usize)> {
        if index.broken.is_some() || index.next >= self.types_end {
            return None;
        }
        let pos = index.next;
        let Some(info) = self.data.bytes().get(pos + 4..pos + 8) else {
            index.broken = Some("truncated type header");
            return None;
        };
        let info = u32::from_le_bytes([info[0], info[1], info[2], info[3]]);
        let Some(kind) = Kind::from_raw((info >> 24) & 0x1f) else {
            index.broken = Some("unknown type kind");
            return None;
        };
        let next = pos + type_size(kind as u32, (info & 0xffff) as usize);
        if next > self.types_end {
            index.broken = Some("type section does not end on a type");
            return None;
        }
        if (index.count as usize).is_multiple_of(INDEX_STRIDE) {
            index.starts.push((pos - self.types_start) as u32);
        }
        index.count += 1;
        index.next = next;
        Some((index.count, kind as u32, pos))
    }

    /// Calls `f` with every type's id, raw kind and header position, in order, until it
    /// breaks; walks past the index only as far as that. Err if a malformed header ended the
    /// walk early.
    fn each_type(
        &self,
        mut f: impl FnMut(u32, u32, usize) -> ControlFlow<()>,
    ) -> Result<(), BtfError> {
        let mut index = self.index();
        let mut pos = self.types_start;
        for id in 1..=index.count {
            let (kind, size) = self.kind_and_size_at(pos);
            if f(id, kind, pos).is_break() {
                return Ok(());
            }
            pos += size;
        }
        while let Some((id, kind, pos)) = self.step(&mut index) {
            if f(id, kind, pos).is_break() {
                return Ok(());
            }
        }
        match index.broken {
            Some(why) => Err(BtfError::Malformed(why)),
            None => Ok(()),
        }
    }

    fn u32_at(&self, pos: usize) -> u32 {
        let b = &self.data.bytes()[pos..pos + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Kind and size (header and data) of the type whose header is at `pos`, one the index
    /// holds.
    fn kind_and_size_at(&self, pos: usize) -> (u32, usize) {
        let info = self.u32_at(pos + 4);
        let kind = (info >> 24) & 0x1f;
        // Every kind was checked when it joined the index.
        (kind, type_size(kind, (info & 0xffff) as usize))
    }

    /// Byte position of type `id`'s header.
    fn header(&self, id: u32) -> Option<usize> {
        let idx = id.checked_sub(1)? as usize;
        let mut index = self.index();
        while idx >= index.count as usize {
            self.step(&mut index)?;
        }
        let mut pos = self.types_start + index.starts[idx / INDEX_STRIDE] as usize;
        for _ in 0..idx % INDEX_STRIDE {
            pos += self.kind_and_size_at(pos).1;
        }
        Some(pos)
    }

    fn string(&self, off: u32) -> Cow<'_, str> {
        let start = self.strings.0 + off as usize;
        if start >= self.strings.1 {
            return Cow::Borrowed("");
        }
        let bytes = &self.data.bytes()[start..self.strings.1];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end])
    }

    /// Kind, name, vlen and the size-or-type word of a type.
    fn info(&self, id: u32) -> Option<(Kind, Cow<'_, str>, usize, u32)> {
        let pos = self.header(id)?;
        let info = self.u32_at(pos + 4);
        let kind = Kind::from_raw((info >> 24) & 0x1f)?;
        Some((
            kind,
            self.string(self.u32_at(pos)),
            (info & 0xffff) as usize,
            self.u32_at(pos + 8),
        ))
    }

    pub fn kind(&self, id: u32) -> Option<Kind> {
        self.info(id).map(|(k, ..)| k)
    }

    /// The id of the first type of `kind` named `name`.
    pub fn find(&self, name: &str, kind: Kind) -> Result<u32, BtfError> {
        let wanted = name.as_bytes();
        let data = self.data.bytes();
        let mut found = None;
        self.each_type(|id, k, pos| {
            if k != kind as u32 {
                return ControlFlow::Continue(());
            }
            let start = self.strings.0 + self.u32_at(pos) as usize;
            let s = data.get(start..start + wanted.len() + 1);
            if s.is_some_and(|s| &s[..wanted.len()] == wanted && s[wanted.len()] == 0) {
                found = Some(id);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        found.ok_or_else(|| BtfError::NotFound {
            kind: kind_name(kind),
            name: name.to_owned(),
        })
    }

    /// Follows typedefs and type qualifiers to the underlying type.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.info(id) {
                Some((
                    Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag,
                    _,
                    _,
                    next,
                )) => id = next,
                _ => break,
            }
        }
        id
    }

    /// Size in bytes of a type.
    pub fn size_of(&self, id: u32) -> Option<u64> {
        let id = self.resolve(id);
        match self.info(id)? {
            (
                Kind::Int | Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Float,
                _,
                _,
                size,
            ) => Some(size as u64),
            (Kind::Ptr, ..) => Some(8),
            (Kind::Array, ..) => {
                let (elem, n) = self.array(id)?;
                Some(self.size_of(elem)? * n as u64)
            }
            _ => None,
        }
    }

    /// Element type and length of an array type.
    pub fn array(&self, id: u32) -> Option<(u32, u32)> {
        let id = self.resolve(id);
        let pos = self.header(id)?;
        (self.kind(id)? == Kind::Array).then(|| (self.u32_at(pos + 12), self.u32_at(pos + 20)))
    }

    /// The type a pointer points to.
    pub fn pointee(&self, id: u32) -> Option<u32> {
        match self.info(self.resolve(id))? {
            (Kind::Ptr, _, _, target) => Some(target),
            _ => None,
        }
    }

    /// Members of a struct or union (anonymous members are returned as they are).
    pub fn members(&self, id: u32) -> Vec<Member<'_>> {
        let id = self.resolve(id);
        let Some((kind @ (Kind::Struct | Kind::Union), _, vlen, _)) = self.info(id) else {
            return Vec::new();
        };
        let _ = kind;
        let pos = self.header(id).unwrap_or(0) + 12;
        let kind_flag = self.u32_at(pos - 8) >> 31 == 1;
        (0..vlen)
            .map(|i| {
                let m = pos + 12 * i;
                let offset = self.u32_at(m + 8);
                Member {
                    name: self.string(self.u32_at(m)),
                    type_id: self.u32_at(m + 4),
                    bit_offset: if kind_flag {
                        offset & 0xff_ffff
                    } else {
                        offset
                    },
                }
            })
            .collect()
    }

    /// Finds a member by name, looking into anonymous structs and unions, with its offset
    /// from the start of `id` in bytes.
    pub fn member(&self, id: u32, name: &str) -> Option<(u32, u64)> {
        for m in self.members(id) {
            if m.name == name {
                return Some((m.type_id, m.bit_offset as u64 / 8));
            }
            if m.name.is_empty()
                && let Some((t, off)) = self.member(m.type_id, name)
            {
                return Some((t, m.bit_offset as u64 / 8 + off));
            }
        }
        None
    }

    /// The byte offset and type of `struct <owner>.<member>`.
    pub fn struct_member(&self, owner: &str, member: &str) -> Result<(u32, u64), BtfError> {
        let id = self.find(owner, Kind::Struct)?;
        self.member(id, member).ok_or_else(|| BtfError::NoMember {
            owner: format!("struct {owner}"),
            member: member.to_owned(),
        })
    }

    /// Values of an enum (or enum64) by name.
    pub fn enum_values(&self, name: &str) -> Result<Vec<(String, i64)>, BtfError> {
        let id = match self.find(name, Kind::Enum) {
            Ok(id) => id,
            Err(_) => self.find(name, Kind::Enum64)?,
        };
        let (kind, _, vlen, size) = self.info(id).ok_or(BtfError::Malformed("enum"))?;
        let pos = self.header(id).unwrap_or(0) + 12;
        let signed = self.u32_at(pos - 8) >> 31 == 1;
        Ok((0..vlen)
            .map(|i| match kind {
                Kind::Enum64 => {
                    let m = pos + 12 * i;
                    let v = self.u32_at(m + 4) as u64 | (self.u32_at(m + 8) as u64) << 32;
                    (self.string(self.u32_at(m)).into_owned(), v as i64)
                }
                _ => {
                    let m = pos + 8 * i;
                    let raw = self.u32_at(m + 4);
                    let v = if signed || size < 4 {
                        raw as i32 as i64
                    } else {
                        raw as i64
                    };
                    (self.string(self.u32_at(m)).into_owned(), v)
                }
            })
            .collect())
    }

    /// One enumerator's value.
    pub fn enum_value(&self, enum_name: &str, value_name: &str) -> Result<i64, BtfError> {
        self.enum_values(enum_name)?
            .into_iter()
            .find(|(n, _)| n == value_name)
            .map(|(_, v)| v)
            .ok_or_else(|| BtfError::NoMember {
                owner: format!("enum {enum_name}"),
                member: value_name.to_owned(),
            })
    }

    /// Parameter types of a tracepoint's prototype, without the leading `void *__data`:
    /// what `tp_btf` and `raw_tp` programs see as their arguments.
    pub fn tracepoint_args(&self, tracepoint: &str) -> Result<Vec<u32>, BtfError> {
        let typedef = self.find(&format!("btf_trace_{tracepoint}"), Kind::Typedef)?;
        let proto = self
            .pointee(typedef)
            .map(|p| self.resolve(p))
            .filter(|&p| self.kind(p) == Some(Kind::FuncProto))
            .ok_or(BtfError::Malformed(
                "btf_trace_* is not a pointer to a function",
            ))?;
        let (_, _, vlen, _) = self.info(proto).ok_or(BtfError::Malformed("prototype"))?;
        let pos = self.header(proto).unwrap_or(0) + 12;
        Ok((1..vlen).map(|i| self.u32_at(pos + 8 * i + 4)).collect())
    }

    /// `struct <name>` if `id` is a pointer to it (through typedefs and qualifiers).
    pub fn is_pointer_to_struct(&self, id: u32, name: &str) -> bool {
        self.pointee(id)
            .map(|t| self.resolve(t))
            .and_then(|t| self.info(t))
            .is_some_and(|(k, n, ..)| k == Kind::Struct && n == name)
    }
}

impl Btf {
    /// Number of types (the highest type id) up to the first malformed header, if any.
    pub fn len(&self) -> u32 {
        let mut index = self.index();
        while self.step(&mut index).is_some() {}
        index.count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A BTF blob with the same type ids as this one in which only the typedefs named in
    /// `typedefs` are real; every other type is a placeholder (`void *`).
    ///
    /// aya needs a parsed vmlinux BTF to load a `tp_btf` program, but uses it only to find the
    /// id of the `btf_trace_<event>` typedef; parsing this skeleton takes a fraction of the
    /// time and memory of the full BTF.
    pub fn skeleton(&self, typedefs: &[&str]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name_offsets = Vec::with_capacity(typedefs.len());
        for name in typedefs {
            name_offsets.push((*name, strings.len() as u32));
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
        let n = self.len() as usize;
        let mut types = Vec::with_capacity(n * 12);
        // A malformed header ends the skeleton there: the types before it keep their ids.
        let _ = self.each_type(|_, kind, pos| {
            let named = if kind == Kind::Typedef as u32 {
                let name = self.string(self.u32_at(pos));
                name_offsets
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|&(_, off)| off)
            } else {
                None
            };
            let (name_off, kind) = match named {
                Some(off) => (off, Kind::Typedef),
                None => (0, Kind::Ptr),
            };
            types.extend_from_slice(&name_off.to_le_bytes());
            types.extend_from_slice(&((kind as u32) << 24).to_le_bytes());
            types.extend_from_slice(&0u32.to_le_bytes());
            ControlFlow::Continue(())
        });
        blob(&types, &strings)
    }
}

/// A BTF blob of a type section and a string section: the header, then the two.
fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(24 + types.len() + strings.len());
    blob.extend_from_slice(&MAGIC.to_le_bytes());
    blob.extend_from_slice(&[1, 0]); // version 1, no flags
    for word in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.extend_from_slice(types);
    blob.extend_from_slice(strings);
    blob
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Struct => "struct",
        Kind::Union => "union",
        Kind::Enum | Kind::Enum64 => "enum",
        Kind::Typedef => "typedef",
        Kind::Func => "function",
        _ => "type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapped kernel BTF (or its copy, where mapping is refused) and a copy read into
    /// memory agree on every type, and the strided index finds every header.
    #[test]
    fn mapped_and_read_agree() {
        let Ok(bytes) = std::fs::read(VMLINUX) else {
            return; // no kernel BTF here
        };
        let read = Btf::parse(bytes).unwrap();
        let mapped = Btf::from_sys_fs().unwrap();
        assert_eq!(read.len(), mapped.len());
        let mut pos = read.types_start;
        for id in 1..=read.len() {
            assert_eq!(read.header(id), Some(pos), "type {id}");
            assert_eq!(mapped.info(id), read.info(id), "type {id}");
            pos += read.kind_and_size_at(pos).1;
        }
        assert_eq!(pos, read.types_end);
        assert_eq!(read.header(read.len() + 1), None);
        assert_eq!(read.header(0), None);
        let zone = mapped.find("zone", Kind::Struct).unwrap();
        assert_eq!(read.find("zone", Kind::Struct).unwrap(), zone);
        assert_eq!(mapped.members(zone), read.members(zone));
    }

    /// A lookup walks only as far as its answer; a later lookup goes on from there.
    #[test]
    fn the_index_grows_as_far_as_lookups_go() {
        let Ok(btf) = Btf::from_sys_fs() else {
            return; // no kernel BTF here
        };
        let zone = btf.find("zone", Kind::Struct).unwrap();
        assert_eq!(btf.index().count, zone);
        assert!(btf.members(zone).iter().any(|m| m.name == "free_area"));
        let all = btf.len();
        assert!(all > zone, "{all} types, zone is {zone}");
        assert_eq!(btf.index().count, all);
        assert_eq!(btf.find("zone", Kind::Struct).unwrap(), zone);
        assert!(matches!(
            btf.find("no_such_struct_here", Kind::Struct),
            Err(BtfError::NotFound { .. })
        ));
    }

    /// A malformed header ends the types there: what lies before it is found, and a lookup
    /// that must walk past it says the BTF is malformed.
    #[test]
    fn a_malformed_header_ends_the_walk() {
        let good = Btf::parse(skeleton_of(&["one", "two"])).unwrap();
        assert_eq!(good.len(), 2);
        let mut blob = skeleton_of(&["one", "two"]);
        // The second type's info word: kind 31 does not exist.
        let info = 24 + 12 + 4;
        blob[info..info + 4].copy_from_slice(&(31u32 << 24).to_le_bytes());
        let bad = Btf::parse(blob).unwrap();
        assert_eq!(bad.find("one", Kind::Typedef).unwrap(), 1);
        assert!(matches!(
            bad.find("two", Kind::Typedef),
            Err(BtfError::Malformed("unknown type kind"))
        ));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad.header(2), None);
    }

    /// A BTF blob of one typedef (of `void`) per name, in order.
    fn skeleton_of(names: &[&str]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut types = Vec::new();
        for name in names {
            types.extend_from_slice(&(strings.len() as u32).to_le_bytes());
            types.extend_from_slice(&((Kind::Typedef as u32) << 24).to_le_bytes());
            types.extend_from_slice(&0u32.to_le_bytes());
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
        blob(&types, &strings)
    }
}
