//! What every program of every object shares: the load-time configuration, the common maps,
//! and small helpers to read the running task and kernel memory.
#![no_std]

use aya_ebpf::{
    EbpfContext, Global,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel,
    },
    macros::map,
    maps::{PerCpuArray, StackTrace},
    programs::{
        BtfTracePointContext, RawTracePointContext, TracePointContext, tracing::StackIdContext,
    },
};
use tracer_common::{
    NO_STACK, TASK_COMM_LEN,
    cgroup::{CgroupKey, CgroupStall},
    config::{
        ABSENT, Config, FEATURE_CGROUP_ID, FEATURE_CGROUP_STALLS, FEATURE_KSTACK, FILTER_CGROUP,
        FILTER_NAME, FILTER_TGID, FILTER_TID, FILTER_UID, Filter,
    },
    record::RecordField,
    stats::{Counter, NR_COUNTERS},
};

/// Filled by user space before load (`tracer_common::names::CONFIG`).
#[unsafe(no_mangle)]
pub static CONFIG: Global<Config> = Global::new(Config::DEFAULT);

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NR_COUNTERS, 0);

/// The exporter: stalls by cgroup and kind. User space sizes it at load (`cgroup::MAX_CGROUPS`
/// groups where it is used).
#[map]
pub static CGROUP_STALLS: aya_ebpf::maps::PerCpuHashMap<CgroupKey, CgroupStall> =
    aya_ebpf::maps::PerCpuHashMap::with_max_entries(1, 0);

/// Kernel stacks of events, by id; user space removes each entry once it has read it.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(4096, 0);

/// One field of the load-time configuration, read alone: `config()` copies all of `Config`
/// (160 bytes) onto the stack.
#[macro_export]
macro_rules! config_field {
    ($field:ident) => {{
        let cfg = &$crate::CONFIG as *const aya_ebpf::Global<tracer_common::config::Config>
            as *const tracer_common::config::Config;
        // SAFETY: `Global<T>` is a transparent wrapper of an initialized `T`. Volatile for the
        // reason `Global::load` is: the loader rewrites the value after compilation.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*cfg).$field)) }
    }};
}

#[inline(always)]
pub fn config() -> Config {
    CONFIG.load()
}

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = STATS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot, written only from this CPU with preemption off.
        unsafe { *slot += 1 };
    }
}

/// An empty histogram for inserts: 544 bytes do not fit on the BPF stack (512), so the
/// insert reads them from global data.
static EMPTY_HISTOGRAM: tracer_common::histogram::Histogram =
    tracer_common::histogram::Histogram::ZERO;

/// Adds one latency (and the pages it reclaimed) to this CPU's histogram of `key`, creating
/// the group on its first event; an event the map has no room for is counted
/// (`Counter::HistogramFull`).
///
/// A per-CPU map: exact without atomics (the BPF target has no atomic read-modify-write in
/// Rust), preallocated (a map allocated at run time makes older kernels WARN when a tracing
/// program uses it), and sized at load for the groups a run can have.
#[inline(always)]
pub fn histogram_add<K>(
    map: &aya_ebpf::maps::PerCpuHashMap<K, tracer_common::histogram::Histogram>,
    key: &K,
    ns: u64,
    pages: u64,
) {
    use tracer_common::histogram::{SLOTS, slot};
    let h = match map.get_ptr_mut(key) {
        Some(h) => h,
        None => {
            // BPF_NOEXIST: a group another CPU created in between keeps its values. Borrowed,
            // not moved: by value, the 544 bytes would be copied onto the BPF stack.
            #[allow(clippy::needless_borrows_for_generic_args)]
            let _ = map.insert(
                key,
                &EMPTY_HISTOGRAM,
                aya_ebpf::bindings::BPF_NOEXIST.into(),
            );
            match map.get_ptr_mut(key) {
                Some(h) => h,
                None => {
                    count(Counter::HistogramFull);
                    return;
                }
            }
        }
    };
    // The slot, read back through memory and masked: `slot()` already clamps, but the
    // verifiers of 5.10 and 6.1 follow its clamp's impossible branch with bounds that
    // contradict each other (umin 63, umax 62) and then refuse `slots[i]` ("R2 invalid mem
    // access"). LLVM cannot drop a mask of a value it reloads, and the verifier bounds a
    // masked value by the mask alone.
    let i = slot(ns);
    // SAFETY: a read of a local.
    let i = unsafe { core::ptr::read_volatile(&i) } & (SLOTS - 1);
    // SAFETY: this CPU's value of the entry, written only from this CPU with preemption off;
    // `i < SLOTS` by the mask.
    unsafe {
        (*h).slots[i] += 1;
        (*h).count += 1;
        (*h).sum_ns += ns;
        (*h).pages += pages;
    }
}

/// Who is running: the current task's ids, name and the time.
pub struct Task {
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
}

impl Task {
    #[inline(always)]
    pub fn current() -> Task {
        let pid_tgid = bpf_get_current_pid_tgid();
        let uid_gid = bpf_get_current_uid_gid();
        Task {
            tgid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            uid: uid_gid as u32,
        }
    }

    /// Whether the configured filter lets this task through (all but `-n`, which needs the
    /// name: `name_wanted`).
    #[inline(always)]
    pub fn wanted(&self, cfg: &Config) -> bool {
        self.wanted_by(&cfg.filter)
    }

    #[inline(always)]
    fn wanted_by(&self, f: &tracer_common::config::Filter) -> bool {
        !((f.flags & FILTER_TGID != 0 && f.tgid != self.tgid)
            || (f.flags & FILTER_TID != 0 && f.tid != self.tid)
            || (f.flags & FILTER_UID != 0 && f.uid != self.uid)
            || !cgroup_wanted(f))
    }
}

/// Whether the configured filter lets the current thread through, `-n` included: reads only
/// the filter of the configuration, the user id only when the filter names one (`uid` gives
/// it), and the name only with `-n`.
#[inline(always)]
pub fn wanted(tgid: u32, tid: u32, uid: impl FnOnce() -> u32) -> bool {
    let f: tracer_common::config::Filter = config_field!(filter);
    !((f.flags & FILTER_TGID != 0 && f.tgid != tgid)
        || (f.flags & FILTER_TID != 0 && f.tid != tid)
        || (f.flags & FILTER_UID != 0 && f.uid != uid())
        || (f.flags & FILTER_NAME != 0 && !name_wanted(&comm()))
        || !cgroup_wanted(&f))
}

/// The current thread's (thread group id, thread id).
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

/// The current thread's user id.
#[inline(always)]
pub fn current_uid() -> u32 {
    bpf_get_current_uid_gid() as u32
}

/// Whether `-c` lets the current task through: its ancestor at the cgroup's level is the
/// cgroup. The helper is called only with `-c`, so kernels that do not offer it to tracing
/// programs load everything else.
#[inline(always)]
pub fn cgroup_wanted(f: &Filter) -> bool {
    if f.flags & FILTER_CGROUP == 0 {
        return true;
    }
    let c: tracer_common::config::CgroupFilter = config_field!(cgroup);
    // SAFETY: a helper taking a plain integer.
    let id =
        unsafe { aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id(c.level as i32) };
    id == c.id
}

/// The current task's cgroup v2 id when records carry it (`FEATURE_CGROUP_ID`), else 0.
#[inline(always)]
pub fn cgroup_id() -> u64 {
    let features: u32 = config_field!(features);
    if features & FEATURE_CGROUP_ID == 0 {
        return 0;
    }
    // SAFETY: a helper without arguments.
    unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() }
}

/// The exporter: adds a stall of `ns` to the current task's cgroup, when asked for
/// (`FEATURE_CGROUP_STALLS`). A cgroup the map has no room for is counted
/// (`Counter::HistogramFull`).
#[inline(always)]
pub fn cgroup_stall(what: u8, ns: u64) {
    let features: u32 = config_field!(features);
    if features & FEATURE_CGROUP_STALLS == 0 {
        return;
    }
    let key = CgroupKey {
        // SAFETY: a helper without arguments.
        cgroup_id: unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() },
        what,
        _pad: [0; 7],
    };
    if let Some(s) = CGROUP_STALLS.get_ptr_mut(key) {
        // SAFETY: this CPU's value, written only from this CPU with preemption off.
        unsafe {
            (*s).count += 1;
            (*s).sum_ns += ns;
        }
        return;
    }
    // A new key starts here on this CPU and at zero on the others; if another CPU inserted it
    // meanwhile, BPF_ANY sets only this CPU's value, which was still zero.
    let first = CgroupStall {
        count: 1,
        sum_ns: ns,
    };
    if CGROUP_STALLS.insert(key, first, 0).is_err() {
        count(Counter::HistogramFull);
    }
}

/// Whether `-n` lets a task of this name through (`tracer_common::config::NameFilter`).
#[inline(always)]
pub fn name_wanted(comm: &[u8; TASK_COMM_LEN]) -> bool {
    let f: tracer_common::config::Filter = config_field!(filter);
    if f.flags & FILTER_NAME == 0 {
        return true;
    }
    let name: tracer_common::config::NameFilter = config_field!(name);
    name.matches(comm)
}

#[inline(always)]
pub fn comm() -> [u8; TASK_COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; TASK_COMM_LEN])
}

#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

/// The kernel stack of the current event, when asked for.
#[inline(always)]
pub fn kernel_stack<C: StackIdContext>(ctx: &C) -> i32 {
    let features: u32 = config_field!(features);
    if features & FEATURE_KSTACK == 0 {
        return NO_STACK;
    }
    match ctx.get_stackid(&STACKS, 0) {
        Ok(id) => id as i32,
        Err(_) => {
            count(Counter::StackLost);
            NO_STACK
        }
    }
}

/// Reads a `T` at `base + offset` in kernel memory. `offset` comes from the kernel's BTF.
#[inline(always)]
pub fn read_at<T: Copy>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copes with any address; a bad one fails the read.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// Fields of one kernel struct, read together where user space found them in one span
/// (`tracer_common::config::Span`), else each on its own.
pub enum Fields<'a> {
    /// The span's bytes, from struct offset `start`.
    Span { words: &'a SpanWords, start: u32 },
    /// The struct's address: each field is one `read_at`.
    Each(u64),
}

/// Room for one span (`Span::MAX` bytes). Kept in a per-CPU array map of the program's object
/// rather than on the stack: a field's place in it is known only at load, and the verifiers
/// before 5.12 refuse a variable offset into the stack, not into a map value.
pub type SpanWords = [u64; tracer_common::config::Span::MAX as usize / 8];

/// A field type `Fields` can hand out: naturally aligned within a word.
pub trait Field: Copy {
    /// The field at bit `shift` of a little-endian word.
    fn from_word(word: u64, shift: u32) -> Self;
}

impl Field for u64 {
    #[inline(always)]
    fn from_word(word: u64, _: u32) -> u64 {
        word
    }
}

impl Field for i32 {
    #[inline(always)]
    fn from_word(word: u64, shift: u32) -> i32 {
        (word >> shift) as u32 as i32
    }
}

impl Field for u8 {
    #[inline(always)]
    fn from_word(word: u64, shift: u32) -> u8 {
        (word >> shift) as u8
    }
}

impl<'a> Fields<'a> {
    /// The struct at `base`, its span copied into `scratch` at once when `span` has one (and
    /// a scratch slot was found), else each field on its own. None for a null `base` or a
    /// failed copy.
    ///
    /// The copy is always `Span::MAX` bytes from the span's start, never fewer: a size the
    /// compiler knows, where `span.len` would be a value the verifier must bound itself (it
    /// knows read-only data as constants, but 5.10's forgets a 4-byte value spilled to the
    /// stack). The bytes past the span belong to the same object or the one around it
    /// (`struct compact_control` on a task's stack below its callers' frames, `struct zone`
    /// inside `struct pglist_data`). Falling back to single reads after a failed copy would
    /// make the verifier walk both ways (row mode's begin: 7,249 -> 7,974 instructions).
    #[inline(always)]
    pub fn read(
        base: u64,
        span: tracer_common::config::Span,
        scratch: Option<*mut SpanWords>,
    ) -> Option<Fields<'a>> {
        if base == 0 {
            return None;
        }
        let Some(words) = scratch.filter(|_| span.len != 0) else {
            return Some(Fields::Each(base));
        };
        // SAFETY: `words` is a map value of `size_of::<SpanWords>()` bytes; the helper copes
        // with any source address (a bad one fails the read).
        let rc = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                words.cast(),
                size_of::<SpanWords>() as u32,
                base.wrapping_add(span.start as u64) as *const core::ffi::c_void,
            )
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: a map value, used by this program only until its next read into it.
        Some(Fields::Span {
            words: unsafe { &*words },
            start: span.start,
        })
    }

    /// The `T` at struct offset `offset` (`ABSENT`: None).
    #[inline(always)]
    pub fn get<T: Field>(&self, offset: u32) -> Option<T> {
        if offset == ABSENT {
            return None;
        }
        match self {
            Fields::Span { words, start } => {
                let at = offset.wrapping_sub(*start);
                let word = *words.get((at / 8) as usize)?;
                Some(T::from_word(word, (at % 8) * 8))
            }
            Fields::Each(base) => read_at(*base, offset),
        }
    }
}

/// A tp_btf or raw tracepoint context: its own arguments, and the context the helpers take.
/// Both kinds share one body per event; only the entry point differs.
pub trait TpArgs: Args + EbpfContext + StackIdContext {}

impl<T: Args + EbpfContext + StackIdContext> TpArgs for T {}

/// A tracepoint's arguments, numbered as the raw tracepoint passes them, whichever kind of
/// hook delivered them.
pub trait Args {
    fn u64_arg(&self, n: usize) -> u64;
}

impl Args for BtfTracePointContext {
    #[inline(always)]
    fn u64_arg(&self, n: usize) -> u64 {
        self.arg(n)
    }
}

impl Args for RawTracePointContext {
    #[inline(always)]
    fn u64_arg(&self, n: usize) -> u64 {
        self.arg(n)
    }
}

/// The arguments of a classic tracepoint, read from its record through a table of fields that
/// user space took from the event's tracefs `format` (`tracer_common::record`).
pub struct Record<'a, const N: usize> {
    pub ctx: &'a TracePointContext,
    pub fields: [RecordField; N],
}

impl<const N: usize> Args for Record<'_, N> {
    /// Argument `n`, widened like a raw argument: signed fields sign-extended. 0 for a field
    /// the record does not have or cannot be read.
    #[inline(always)]
    fn u64_arg(&self, n: usize) -> u64 {
        if n >= N {
            return 0;
        }
        let f = self.fields[n];
        let off = f.offset as usize;
        // SAFETY: offsets and sizes from the event's own format file; a bad read fails.
        unsafe {
            match (f.size, f.signed != 0) {
                (1, false) => self.ctx.read_at::<u8>(off).map(u64::from),
                (1, true) => self.ctx.read_at::<i8>(off).map(|v| v as i64 as u64),
                (2, false) => self.ctx.read_at::<u16>(off).map(u64::from),
                (2, true) => self.ctx.read_at::<i16>(off).map(|v| v as i64 as u64),
                (4, false) => self.ctx.read_at::<u32>(off).map(u64::from),
                (4, true) => self.ctx.read_at::<i32>(off).map(|v| v as i64 as u64),
                (8, _) => self.ctx.read_at::<u64>(off),
                _ => Ok(0),
            }
        }
        .unwrap_or(0)
    }
}
