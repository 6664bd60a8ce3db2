//! Loading the programs, attaching them, and the event loop: what both tools do between their
//! options and their output.
//!
//! Lifecycle: `Session::load` (object, configuration, transport) → `attach` (one hook per
//! tracepoint, the best rung this kernel offers) → `run` (events, signals, deadline) → drop,
//! which detaches and unloads everything (nothing is pinned, so even SIGKILL leaves nothing).

use std::{
    collections::HashMap,
    future::poll_fn,
    os::fd::{AsFd as _, AsRawFd as _},
    task::Poll,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        MapData, PerCpuArray, PerfEventArray, RingBuf, StackTraceMap, perf::PerfEvent,
        perf::PerfEventArrayBuffer,
    },
    programs::{BtfTracePoint, FEntry, KProbe, RawTracePoint, TracePoint},
};
use log::debug;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracer_common::{
    config::{Config, FEATURE_DEBUG_LOG, FEATURE_KSTACK},
    names,
    record::RecordField,
    stats::{Counter, NR_COUNTERS},
};

use crate::ksyms::Ksyms;

/// How events reach user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The BPF ring buffer (5.8+), woken in batches.
    Ringbuf,
    /// A perf event array, one buffer per CPU.
    Perfbuf,
}

/// The rungs of the hook ladder, as `--hooks` names them.
///
/// Tracepoint hooks: tp_btf and raw tracepoints run the same program body (every kernel pointer
/// is read with `bpf_probe_read_kernel`, so tp_btf's typed access adds nothing), and raw
/// tracepoints need no BTF to attach while aya needs a parsed vmlinux BTF for tp_btf; classic
/// tracepoints read the event's record through field offsets from tracefs, and see no kernel
/// pointers. `auto` takes raw tracepoints where the kernel loads them (4.17+), classic
/// tracepoints otherwise. `kprobe` and `fentry` add a probe on a kernel function for values no
/// tracepoint passes on every kernel (compactsnoop: the run's `compact_control` before 5.18),
/// and hook the tracepoints with raw tracepoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Hooks {
    /// Decide from what the running kernel has (see `--debug`).
    Auto,
    /// BTF-enabled raw tracepoints (5.5+, needs kernel BTF).
    TpBtf,
    /// Raw tracepoints (4.17+).
    RawTp,
    /// Classic tracepoints, fields read from the record (any kernel; no kernel pointers).
    Tracepoint,
    /// Raw tracepoints plus a kprobe where a value is missing (needs CONFIG_KPROBES).
    Kprobe,
    /// Raw tracepoints plus an fentry program where a value is missing (needs BTF, 5.5+).
    Fentry,
}

impl Hooks {
    /// The name `--hooks` takes for this rung.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }
}

/// How the tracepoints of a run are hooked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TpBtf,
    RawTp,
    Classic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::TpBtf => "tp_btf",
            Kind::RawTp => "raw_tp",
            Kind::Classic => "tracepoint",
        }
    }
}

/// A tracepoint and the programs that can hook it.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    pub system: &'static str,
    pub event: &'static str,
    pub btf_program: &'static str,
    pub raw_program: &'static str,
    /// The classic tracepoint program and where it finds its arguments.
    pub classic: Option<Classic>,
}

/// A classic tracepoint program: the read-only global it takes its record layout from, and the
/// record's fields, in the order of the raw tracepoint's arguments (`tracer_common::record`).
/// A name with a leading `?` is a field the record may lack.
#[derive(Clone, Copy, Debug)]
pub struct Classic {
    pub program: &'static str,
    pub global: &'static str,
    pub fields: &'static [&'static str],
}

pub struct Options {
    pub tool: &'static str,
    /// The maps this run uses; the other sizable maps of the object are created with one entry.
    pub maps: &'static [&'static str],
    pub config: Config,
    pub transport: Option<Transport>,
    pub hooks: Hooks,
    pub debug: bool,
    /// Size of the ring buffer in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
}

/// The programs, loaded.
pub struct Session {
    tool: &'static str,
    ebpf: Ebpf,
    btf: Option<aya::Btf>,
    kind: Kind,
    transport: Transport,
    /// What was attached, and how: for `--debug` and tests.
    pub attached: Vec<String>,
}

/// The kind of program for the tracepoint hooks, from what was asked and what the kernel has.
fn choose_kind(asked: Hooks, have_btf: bool, hooks: &[Hook]) -> Result<Kind> {
    let classic_for_all = hooks.iter().all(|h| h.classic.is_some());
    match asked {
        Hooks::TpBtf => {
            if !have_btf {
                bail!(
                    "--hooks tp-btf: tp_btf needs the kernel's BTF (/sys/kernel/btf/vmlinux), which this \
                     kernel does not have"
                );
            }
            debug!("hooks: tp_btf, as asked");
            Ok(Kind::TpBtf)
        }
        Hooks::RawTp => {
            debug!("hooks: raw_tp, as asked");
            Ok(Kind::RawTp)
        }
        Hooks::Tracepoint => {
            if !classic_for_all {
                bail!("--hooks tracepoint: this mode has no classic tracepoint programs");
            }
            debug!("hooks: classic tracepoints, as asked");
            Ok(Kind::Classic)
        }
        Hooks::Auto | Hooks::Kprobe | Hooks::Fentry => {
            let raw = aya::sys::is_program_supported(aya::programs::ProgramType::RawTracePoint)
                .unwrap_or(false);
            if raw {
                debug!(
                    "hooks: raw_tp (the kernel loads raw tracepoint programs; they run the \
                     same code as tp_btf without parsing the kernel's BTF)"
                );
                Ok(Kind::RawTp)
            } else if classic_for_all {
                debug!("hooks: classic tracepoints (the kernel loads no raw tracepoint programs)");
                Ok(Kind::Classic)
            } else {
                bail!("this kernel loads no raw tracepoint programs (4.17+)")
            }
        }
    }
}

/// The record layout of every classic program the hooks use, from tracefs.
fn record_tables(hooks: &[Hook]) -> Result<Vec<(&'static str, Vec<RecordField>)>> {
    let tracefs = crate::tracefs::root()?;
    let mut tables: Vec<(&'static str, Vec<RecordField>)> = Vec::new();
    for hook in hooks {
        let Some(classic) = hook.classic else {
            continue;
        };
        let Ok(format) = crate::tracefs::Format::read(&tracefs, hook.system, hook.event) else {
            // An event this kernel lacks: attaching to it fails later, if it is asked for.
            debug!(
                "no tracepoint {}:{} on this kernel",
                hook.system, hook.event
            );
            continue;
        };
        let table = crate::tracefs::record_fields(&format, classic.fields)
            .with_context(|| format!("tracepoint {}:{}", hook.system, hook.event))?;
        match tables.iter().find(|(g, _)| *g == classic.global) {
            Some((_, known)) if *known != table => bail!(
                "tracepoint {}:{} lays out its record unlike the others of its kind",
                hook.system,
                hook.event
            ),
            Some(_) => {}
            None => tables.push((classic.global, table)),
        }
    }
    Ok(tables)
}

/// Tries to lift RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF maps to. Newer kernels
/// account BPF memory to the memory cgroup, so a refusal is not an error.
fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(
            "could not raise RLIMIT_MEMLOCK ({}); fine on 5.11+",
            std::io::Error::last_os_error()
        );
    }
}

fn ringbuf_supported() -> bool {
    aya::sys::is_map_supported(aya::maps::MapType::RingBuf).unwrap_or(false)
}

/// Maps that cost kernel memory and creation time in proportion to their size.
const SIZABLE_MAPS: [&str; 5] = [
    names::STACKS,
    names::COMPACT_BEGIN,
    names::COMPACT_CC,
    names::RECLAIM_BEGIN,
    names::EXTFRAG_COUNTS,
];
/// The size of a map a run does not use.
const MIN_MAP_ENTRIES: u32 = 64;

/// The loader, built without aya's own parse of the kernel's BTF.
///
/// aya 0.14's `EbpfLoader::new()` parses all of /sys/kernel/btf/vmlinux (about 40 ms and
/// 15 MB here), although our programs have no CO-RE relocations for it to apply. With
/// CAP_SYS_ADMIN, this process enters a private mount namespace and hides that one file while
/// the loader is built, so the parse fails at once; the rest of the system is unaffected and
/// the file is visible again right after. Without the privilege, the loader parses as usual.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    const VMLINUX: &std::ffi::CStr = c"/sys/kernel/btf/vmlinux";
    // SAFETY: plain syscalls with valid NUL-terminated paths. The process is single-threaded
    // here (the event loop is a current-thread runtime), which unsharing CLONE_NEWNS needs.
    let hidden = unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            // Our mounts must not propagate back to the system's namespace.
            && libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) == 0
            && libc::mount(c"/dev/null".as_ptr(), VMLINUX.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) == 0
    };
    let loader = EbpfLoader::new();
    if hidden {
        // SAFETY: unmounting the bind mount made above.
        unsafe { libc::umount2(VMLINUX.as_ptr(), libc::MNT_DETACH) };
    } else {
        debug!(
            "could not hide vmlinux BTF from the loader ({})",
            std::io::Error::last_os_error()
        );
    }
    loader
}

impl Session {
    /// Loads the object for `opts.transport`. `kernel` is the kernel's BTF, which tp_btf hooks
    /// need; `hooks` are the tracepoints that will be attached.
    pub fn load(
        opts: &Options,
        kernel: Option<&crate::btf::Btf>,
        hooks: &[Hook],
    ) -> Result<Session> {
        raise_memlock();
        let kind = choose_kind(opts.hooks, kernel.is_some(), hooks)?;
        let btf = match (kind, kernel) {
            (Kind::TpBtf, Some(kernel)) => {
                let names: Vec<String> = hooks
                    .iter()
                    .map(|h| format!("btf_trace_{}", h.event))
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let t = Instant::now();
                let skeleton = kernel.skeleton(&names);
                let built = elapsed_ms(t);
                let parsed =
                    aya::Btf::parse(&skeleton, aya::Endianness::default()).map_err(|e| {
                        anyhow!("the kernel's BTF cannot be used for tp_btf hooks ({e})")
                    })?;
                debug!(
                    "skeleton BTF built in {built:.1} ms, parsed by aya in {:.1} ms",
                    elapsed_ms(t) - built
                );
                Some(parsed)
            }
            _ => None,
        };
        // The classic programs' record layouts, from tracefs (kept alive for the loader).
        let tables = if kind == Kind::Classic {
            record_tables(hooks)?
        } else {
            Vec::new()
        };
        let transport = match opts.transport {
            Some(t) => t,
            None if ringbuf_supported() => Transport::Ringbuf,
            None => Transport::Perfbuf,
        };
        if transport == Transport::Ringbuf && !ringbuf_supported() {
            bail!("this kernel has no BPF ring buffer (5.8+); use --transport perfbuf");
        }
        let object = match transport {
            Transport::Ringbuf => crate::RINGBUF_OBJECT,
            Transport::Perfbuf => crate::PERFBUF_OBJECT,
        };
        let mut config = opts.config;
        if transport == Transport::Ringbuf {
            // Batch wake-ups: the kernel writes without waking us until an eighth of the
            // buffer is waiting; the event loop drains every POLL_PERIOD regardless.
            config.wakeup_bytes = opts.ring_bytes / 8;
            if opts.debug {
                config.features |= FEATURE_DEBUG_LOG;
            }
        }
        let mut loader = loader_without_kernel_btf();
        loader
            .btf(None)
            .override_global(names::CONFIG, &config, true);
        for (global, fields) in &tables {
            loader.override_global(global, fields.as_slice(), true);
        }
        if transport == Transport::Ringbuf {
            loader.map_max_entries(names::EVENTS, opts.ring_bytes);
        }
        for map in SIZABLE_MAPS {
            let used = opts.maps.contains(&map)
                && (map != names::STACKS || config.features & FEATURE_KSTACK != 0);
            if !used {
                // Not one: LRU hash maps want at least one entry per CPU.
                loader.map_max_entries(map, MIN_MAP_ENTRIES);
            }
        }
        let ebpf = loader
            .load(object)
            .context("loading the eBPF object failed")?;
        debug!("loaded the {transport:?} object");
        Ok(Session {
            tool: opts.tool,
            ebpf,
            btf,
            kind,
            transport,
            attached: Vec::new(),
        })
    }

    /// Attaches one program per tracepoint, of the kind chosen at load.
    pub fn attach(&mut self, hooks: &[Hook]) -> Result<()> {
        for hook in hooks {
            self.attach_one(hook).map_err(|e| {
                // The verifier's log, when there is one, is for --debug; the error is one line.
                debug!("{e:#}");
                let why = match e.downcast_ref::<aya::programs::ProgramError>() {
                    Some(p) => crate::probes::short(p),
                    None => format!("{e:#}"),
                };
                anyhow!(
                    "cannot attach a {} program to tracepoint {}:{} ({why})",
                    self.kind.name(),
                    hook.system,
                    hook.event
                )
            })?;
            debug!(
                "{}:{} attached as {}",
                hook.system,
                hook.event,
                self.kind.name()
            );
            self.attached.push(format!(
                "{}:{} {}",
                hook.system,
                hook.event,
                self.kind.name()
            ));
        }
        Ok(())
    }

    /// How the tracepoints are hooked in this run.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn attach_one(&mut self, hook: &Hook) -> Result<()> {
        match self.kind {
            Kind::TpBtf => {
                let btf = self
                    .btf
                    .as_ref()
                    .context("tp_btf needs the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
                let prog: &mut BtfTracePoint = self
                    .ebpf
                    .program_mut(hook.btf_program)
                    .ok_or_else(|| anyhow!("program {} missing from the object", hook.btf_program))?
                    .try_into()?;
                prog.load(hook.event, btf)?;
                prog.attach()?;
            }
            Kind::RawTp => {
                let prog: &mut RawTracePoint = self
                    .ebpf
                    .program_mut(hook.raw_program)
                    .ok_or_else(|| anyhow!("program {} missing from the object", hook.raw_program))?
                    .try_into()?;
                prog.load()?;
                prog.attach(hook.event)?;
            }
            Kind::Classic => {
                let classic = hook.classic.context("no classic tracepoint program")?;
                let prog: &mut TracePoint = self
                    .ebpf
                    .program_mut(classic.program)
                    .ok_or_else(|| anyhow!("program {} missing from the object", classic.program))?
                    .try_into()?;
                prog.load()?;
                prog.attach(hook.system, hook.event)?;
            }
        }
        Ok(())
    }

    /// Attaches a kprobe program at the entry of a kernel function's symbol
    /// (`probes::kprobe_target`).
    pub fn attach_kprobe(&mut self, program: &str, symbol: &str) -> Result<()> {
        let prog: &mut KProbe = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("program {program} missing from the object"))?
            .try_into()?;
        prog.load().map_err(|e| {
            anyhow!(
                "the kernel refused the kprobe program for {symbol}() ({})",
                crate::probes::short(&e)
            )
        })?;
        prog.attach(symbol, 0).map_err(|e| {
            anyhow!(
                "cannot attach a kprobe to {symbol}() ({})",
                crate::probes::short(&e)
            )
        })?;
        debug!("kprobe attached to {symbol}()");
        self.attached.push(format!("{symbol} kprobe"));
        Ok(())
    }

    /// Attaches an fentry program to a kernel function (check first that the kernel did not
    /// inline it: `probes::function_symbol`). Needs all of the kernel's BTF, which is parsed
    /// here (tens of milliseconds): only runs that ask for fentry pay for it.
    pub fn attach_fentry(&mut self, program: &str, function: &str) -> Result<()> {
        let t = Instant::now();
        let btf = aya::Btf::from_sys_fs().map_err(|e| {
            anyhow!("fentry hooks need the kernel's BTF (/sys/kernel/btf/vmlinux): {e}")
        })?;
        debug!("kernel BTF parsed for fentry in {:.1} ms", elapsed_ms(t));
        let prog: &mut FEntry = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("program {program} missing from the object"))?
            .try_into()?;
        prog.load(function, &btf).map_err(|e| {
            anyhow!(
                "the kernel refused the fentry program for {function}() ({})",
                crate::probes::short(&e)
            )
        })?;
        prog.attach().map_err(|e| {
            anyhow!(
                "cannot attach fentry to {function}() ({})",
                crate::probes::short(&e)
            )
        })?;
        debug!("fentry attached to {function}()");
        self.attached.push(format!("{function} fentry"));
        Ok(())
    }

    /// Attaches a classic tracepoint program (record fields at offsets from tracefs).
    pub fn attach_classic(&mut self, system: &str, event: &str, program: &str) -> Result<()> {
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("program {program} missing from the object"))?
            .try_into()?;
        prog.load()?;
        prog.attach(system, event)
            .with_context(|| format!("cannot attach to tracepoint {system}:{event}"))?;
        debug!("{system}:{event} attached as tracepoint");
        self.attached.push(format!("{system}:{event} tracepoint"));
        Ok(())
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Takes the event stream out of the object.
    pub fn events(&mut self) -> Result<Events> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .context("EVENTS map missing")?;
        let source = match self.transport {
            Transport::Ringbuf => {
                let ring = RingBuf::try_from(map)?;
                // SAFETY: the ring buffer owns its map fd and lives inside the AsyncFd, so the
                // fd stays open for as long as it is registered.
                Source::Ring(unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow!("{e}"))?)
            }
            Transport::Perfbuf => {
                let mut array = PerfEventArray::try_from(map)?;
                let cpus = aya::util::online_cpus().map_err(|(_, e)| e)?;
                let mut buffers = Vec::with_capacity(cpus.len());
                for cpu in cpus {
                    let buf = array.open(cpu, Some(PERF_PAGES_PER_CPU))?;
                    // SAFETY: each buffer owns its perf fd and lives inside its AsyncFd.
                    buffers.push(unsafe { AsyncFd::register(buf) }.map_err(|e| anyhow!("{e}"))?);
                }
                Source::Perf(buffers, array)
            }
        };
        Ok(Events { source, lost: 0 })
    }

    /// Takes the stack map out of the object, with the kernel's symbols.
    pub fn stacks(&mut self) -> Result<Stacks> {
        let map = self
            .ebpf
            .take_map(names::STACKS)
            .context("STACKS map missing")?;
        Ok(Stacks {
            map: StackTraceMap::try_from(map)?,
            ksyms: Ksyms::load()?,
            seen: HashMap::new(),
        })
    }

    /// Takes a map out of the object by name.
    pub fn take_map(&mut self, name: &str) -> Result<aya::maps::Map> {
        self.ebpf
            .take_map(name)
            .with_context(|| format!("{name} map missing"))
    }

    /// The kernel-side counters, summed over CPUs.
    pub fn counters(&self) -> [u64; NR_COUNTERS as usize] {
        let mut out = [0u64; NR_COUNTERS as usize];
        let Some(map) = self.ebpf.map(names::STATS) else {
            return out;
        };
        let Ok(array) = PerCpuArray::<_, u64>::try_from(map) else {
            return out;
        };
        for c in Counter::ALL {
            if let Ok(values) = array.get(&(c as u32), 0) {
                out[c as usize] = values.iter().sum();
            }
        }
        out
    }

    /// Prints the sink's header, runs the event loop until it ends (signal, deadline, reader
    /// gone), and reports lost events on stderr.
    pub async fn trace(
        &mut self,
        sink: &mut dyn Sink,
        duration: Option<Duration>,
        interval: Option<Duration>,
        debug: bool,
    ) -> Result<End> {
        let mut events = self.events()?;
        let logger = if debug { self.logger() } else { None };
        // Before the header: a script that sees it may signal at once.
        let signals = Signals::install()?;
        if !sink.header().context("writing the header")? {
            return Ok(End::ReaderGone);
        }
        let end = run(&mut events, sink, signals, duration, interval, logger).await?;
        self.report_losses(&events);
        Ok(end)
    }

    /// The aya-log reader for `--debug`, when the object has one.
    pub fn logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        if self.transport != Transport::Ringbuf {
            return None;
        }
        aya_log::EbpfLogger::init(&mut self.ebpf).ok()
    }

    /// Times the kernel skipped one of our programs instead of running it, summed over them
    /// (`recursion_misses`): it does so when a hook fires on a CPU that is already running a
    /// BPF program (an interrupt during one, or a BPF map syscall in progress). Each skip is an
    /// event no tool could see. `None` where `bpf_prog_info` has no such field (before 5.12);
    /// kernels count skips of classic tracepoint programs only from 6.7 on.
    pub fn kernel_misses(&self) -> Option<u64> {
        let mut total = None;
        for (_, program) in self.ebpf.programs() {
            let Ok(fd) = program.fd() else { continue };
            if let Some(n) = prog_recursion_misses(fd.as_fd().as_raw_fd()) {
                *total.get_or_insert(0) += n;
            }
        }
        total
    }

    /// Prints lost-event counts to stderr: `<tool>: N events lost` (documented in the README).
    pub fn report_losses(&self, events: &Events) {
        let c = self.counters();
        let lost = c[Counter::Lost as usize] + events.lost;
        if lost > 0 {
            eprintln!("{}: {lost} events lost", self.tool);
        }
        match self.kernel_misses() {
            Some(0) => {}
            Some(n) => eprintln!(
                "{}: {n} events missed: the kernel skipped our program on a CPU that was already \
                 running a BPF program",
                self.tool
            ),
            None => {
                debug!("this kernel does not report the programs it skipped (recursion_misses)")
            }
        }
        if c[Counter::StackLost as usize] > 0 {
            eprintln!(
                "{}: {} kernel stacks lost",
                self.tool,
                c[Counter::StackLost as usize]
            );
        }
        debug!(
            "ends without a begin: {}, begin map full: {}",
            c[Counter::MissedBegin as usize],
            c[Counter::BeginMapFull as usize]
        );
    }
}

enum Source {
    Ring(AsyncFd<RingBuf<MapData>>),
    // The array is kept so the buffers stay registered in it.
    Perf(
        Vec<AsyncFd<PerfEventArrayBuffer<MapData>>>,
        #[allow(dead_code)] PerfEventArray<MapData>,
    ),
}

/// The stream of raw records from the kernel.
pub struct Events {
    source: Source,
    /// Records the perf buffers reported dropped.
    pub lost: u64,
}

impl Events {
    /// Hands every waiting record to `f`. Returns the number of records read.
    pub fn drain(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        match &mut self.source {
            Source::Ring(fd) => {
                let ring = fd.get_mut();
                while let Some(item) = ring.next() {
                    f(&item);
                    n += 1;
                }
            }
            Source::Perf(buffers, _) => {
                let mut scratch = Vec::new();
                let lost = &mut self.lost;
                for buf in buffers.iter_mut() {
                    buf.get_mut().for_each(|event| match event {
                        PerfEvent::Sample { head, tail } => {
                            if tail.is_empty() {
                                f(head);
                            } else {
                                scratch.clear();
                                scratch.extend_from_slice(head);
                                scratch.extend_from_slice(tail);
                                f(&scratch);
                            }
                            n += 1;
                        }
                        PerfEvent::Lost { count } => *lost += count,
                    });
                }
            }
        }
        n
    }

    /// Waits until the kernel wakes us: the ring buffer once a batch is waiting, a perf
    /// buffer at every event (aya opens them so).
    async fn woken(&mut self) {
        match &mut self.source {
            Source::Ring(fd) => {
                if let Ok(mut guard) = fd.readable_mut().await {
                    guard.clear_ready();
                }
            }
            Source::Perf(buffers, _) => {
                poll_fn(|cx| {
                    for fd in buffers.iter_mut() {
                        if let Poll::Ready(Ok(mut guard)) = fd.poll_read_ready_mut(cx) {
                            guard.clear_ready();
                            return Poll::Ready(());
                        }
                    }
                    Poll::Pending
                })
                .await
            }
        }
    }

    pub fn raw_fd(&self) -> Option<i32> {
        match &self.source {
            Source::Ring(fd) => Some(fd.get_ref().as_raw_fd()),
            Source::Perf(..) => None,
        }
    }
}

/// Kernel stacks by id, symbolized.
///
/// The kernel gives identical stacks the same id, and a burst of events from one call path
/// puts many records with one id in the buffer before user space reads the first. Each id is
/// removed from the map once read, so the map never fills, and remembered here for the records
/// that follow. The map is asked first, so an id the kernel has since reused for another stack
/// shows the new one. At most one entry per id; ids are bounded by the size of the stack map.
pub struct Stacks {
    map: StackTraceMap<MapData>,
    ksyms: Ksyms,
    seen: HashMap<u32, Vec<String>>,
}

impl Stacks {
    /// The frames of stack `id`, innermost first, as `symbol+0xoff`, without the frames of
    /// the tracing machinery. Empty for an event without a stack.
    pub fn frames(&mut self, id: i32) -> &[String] {
        let Ok(id) = u32::try_from(id) else {
            return &[];
        };
        if let Ok(trace) = self.map.get(&id, 0) {
            let frames = trace
                .frames()
                .iter()
                .map(|f| self.ksyms.format(f.ip))
                .skip_while(|f| is_tracing_frame(f))
                .collect();
            let _ = self.map.remove(&id);
            self.seen.insert(id, frames);
        }
        self.seen.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Writes stack `id` as `-K` shows it: one frame per line, indented, a blank line after.
    pub fn write(&mut self, w: &mut impl std::io::Write, id: i32) -> std::io::Result<()> {
        for frame in self.frames(id) {
            writeln!(w, "    {frame}")?;
        }
        writeln!(w)
    }
}

/// Frames of the tracing machinery itself (our program, the tracepoint's BPF trampoline or
/// perf glue), which sit on top of every captured stack.
fn is_tracing_frame(frame: &str) -> bool {
    [
        "bpf_prog_",
        "bpf_trace_run",
        "__bpf_trace_",
        "__traceiter_",
        "perf_trace_",
        "trace_call_bpf",
        "perf_tp_event",
        "bpf_get_stack",
    ]
    .iter()
    .any(|p| frame.starts_with(p))
}

/// What the event loop calls.
pub trait Sink {
    /// Prints the header once the probes are attached. `Ok(false)` when the reader is gone.
    fn header(&mut self) -> std::io::Result<bool>;
    /// One raw record. Returns false to stop (the reader of stdout went away).
    fn record(&mut self, data: &[u8]) -> bool;
    /// After each batch: flush output. Returns false to stop.
    fn batch_end(&mut self) -> bool;
    /// Every `interval` given to `run`, and once at the end.
    fn interval(&mut self) -> bool {
        true
    }
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Signal,
    Deadline,
    ReaderGone,
}

/// Pages of each CPU's perf buffer (1 MiB with 4 KiB pages).
const PERF_PAGES_PER_CPU: usize = 256;

/// How often the ring buffer is drained without a wake-up: bounds the display latency.
pub const POLL_PERIOD: Duration = Duration::from_millis(50);

/// SIGINT and SIGTERM, caught from the moment this is made: the tools end cleanly on either.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }
}

/// Runs until SIGINT, SIGTERM, the deadline, or the reader of stdout going away.
pub async fn run(
    events: &mut Events,
    sink: &mut dyn Sink,
    signals: Signals,
    duration: Option<Duration>,
    interval: Option<Duration>,
    mut logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
) -> Result<End> {
    let Signals {
        int: mut sigint,
        term: mut sigterm,
    } = signals;
    let start = tokio::time::Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut tick = tokio::time::interval(POLL_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_interval = interval.map(|i| start + i);
    let far = start + Duration::from_secs(100 * 365 * 24 * 3600);

    let end = loop {
        tokio::select! {
            _ = sigint.recv() => break End::Signal,
            _ = sigterm.recv() => break End::Signal,
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => break End::Deadline,
            _ = tick.tick() => {}
            _ = events.woken() => {}
        }
        if let Some(l) = logger.as_mut() {
            l.flush();
        }
        if !drain(events, sink) {
            break End::ReaderGone;
        }
        if let (Some(at), Some(every)) = (next_interval, interval)
            && tokio::time::Instant::now() >= at
        {
            next_interval = Some(at + every);
            if !sink.interval() || !sink.batch_end() {
                break End::ReaderGone;
            }
        }
    };
    // Whatever arrived before the end is still shown.
    if end != End::ReaderGone && drain(events, sink) && interval.is_some() {
        let _ = sink.interval() && sink.batch_end();
    }
    if let Some(l) = logger.as_mut() {
        l.flush();
    }
    Ok(end)
}

fn drain(events: &mut Events, sink: &mut dyn Sink) -> bool {
    let mut keep = true;
    events.drain(&mut |data| {
        if keep {
            keep = sink.record(data);
        }
    });
    keep && sink.batch_end()
}

/// `recursion_misses` of a loaded program, from `BPF_OBJ_GET_INFO_BY_FD` with the kernel's own
/// `bpf_prog_info`: `None` when the call fails or the kernel's info ends before the field.
fn prog_recursion_misses(fd: std::os::fd::RawFd) -> Option<u64> {
    use aya_obj::generated::{bpf_cmd, bpf_prog_info};
    // The `info` member of `union bpf_attr` for this command.
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // SAFETY: a plain C struct of integers, valid when zeroed.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: std::ptr::addr_of_mut!(info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes into `info`, and the new length into
    // `attr`, both of which live through the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<InfoAttr>(),
        )
    };
    let end = std::mem::offset_of!(bpf_prog_info, recursion_misses) + std::mem::size_of::<u64>();
    (rc == 0 && attr.info_len as usize >= end).then_some(info.recursion_misses)
}

/// Monotonic time in the kernel's `bpf_ktime_get_ns` clock.
pub fn ktime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Time since `since`, for `--debug` timing.
pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
