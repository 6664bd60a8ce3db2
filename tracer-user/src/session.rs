//! The programs of one run, loaded and attached: what both tools do between their options and
//! their output.
//!
//! Lifecycle: `Session::load` (object, configuration, transport; the hook kind from
//! `hooks::choose_kind`) → `attach` (one program per tracepoint) → `trace` (the event loop of
//! `event_loop`, then the losses) → drop, which detaches and unloads everything (nothing is
//! pinned, so even SIGKILL leaves nothing).

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{BtfTracePoint, FEntry, KProbe, RawTracePoint, TracePoint},
};
use log::debug;
use tokio::io::unix::AsyncFd;
use tracer_common::{
    config::{Config, FEATURE_DEBUG_LOG, FEATURE_KSTACK},
    names,
    stats::{Counter, NR_COUNTERS},
};

use crate::{
    clock::elapsed_ms,
    event_loop::{End, Ending, Losses, Signals, Sink, run},
    hooks::{ClassicHook, Hook, ProgramKind, record_tables},
    stacks::Stacks,
    transport::{Events, Transport, ringbuf_supported},
};

pub struct Options {
    pub tool: &'static str,
    /// The tool's programs (`crate::Objects`).
    pub objects: &'static crate::Objects,
    /// The maps this run uses; the other sizable maps of the object are created with one entry.
    pub maps: &'static [&'static str],
    pub config: Config,
    pub transport: Option<Transport>,
    /// The program kind for the tracepoints (`hooks::plan`).
    pub kind: ProgramKind,
    pub debug: bool,
    /// Size of the ring buffer in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    /// Entries of maps this run sizes itself (the others it uses keep the object's size).
    pub map_sizes: Vec<(&'static str, u32)>,
    /// Tracepoints this run hooks with classic programs whatever `kind` is
    /// (`attach_classic_hooks`): their record layouts are read at load.
    pub classic_hooks: Vec<ClassicHook>,
}

/// The programs, loaded.
pub struct Session {
    tool: &'static str,
    ebpf: Ebpf,
    btf: Option<aya::Btf>,
    kind: ProgramKind,
    transport: Transport,
    /// What was attached, and how: for `--debug` and tests.
    pub attached: Vec<String>,
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
    /// need; `hooks` are the tracepoints that will be attached, with programs of `opts.kind`.
    pub fn load(
        opts: &Options,
        kernel: Option<&crate::btf::Btf>,
        hooks: &[Hook],
    ) -> Result<Session> {
        raise_memlock();
        let kind = opts.kind;
        let btf = match (kind, kernel) {
            (ProgramKind::TpBtf, Some(kernel)) => {
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
        let rungs = hooks
            .iter()
            .filter(|_| kind == ProgramKind::Classic)
            .map(|h| (h.system, h.event, h.classic));
        let classic = opts
            .classic_hooks
            .iter()
            .map(|h| (h.system, h.event, h.classic));
        let tables = record_tables(rungs.chain(classic))?;
        let transport = match opts.transport {
            Some(t) => t,
            None if ringbuf_supported() => Transport::Ringbuf,
            None => Transport::Perfbuf,
        };
        if transport == Transport::Ringbuf && !ringbuf_supported() {
            bail!("this kernel has no BPF ring buffer (5.8+); use --transport perfbuf");
        }
        let object = match transport {
            Transport::Ringbuf => opts.objects.ringbuf,
            Transport::Perfbuf => opts.objects.perfbuf,
        };
        let mut config = opts.config;
        if transport == Transport::Ringbuf {
            // Beside the wake-up for the first record after a drain, one forced wake-up once an
            // eighth of the buffer is waiting, so that a burst is drained before the
            // buffer fills (event_loop::BATCH_GRACE).
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
        for map in names::SIZABLE {
            let used = opts.maps.contains(&map)
                && (map != names::STACKS || config.features & FEATURE_KSTACK != 0);
            if !used {
                // Not one: LRU hash maps want at least one entry per CPU.
                loader.map_max_entries(map, MIN_MAP_ENTRIES);
            } else if let Some(&(_, n)) = opts.map_sizes.iter().find(|(m, _)| *m == map) {
                loader.map_max_entries(map, n);
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
            let verified = self.attach_one(hook).map_err(|e| {
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
                "{}:{} attached as {} ({} instructions verified in {:.2} ms)",
                hook.system,
                hook.event,
                self.kind.name(),
                verified
                    .instructions
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                verified.load.as_secs_f64() * 1e3
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
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// Loads and attaches the hook's program of the session's kind; says what loading it took
    /// (for `--debug`: the kernel's verifier is most of a tool's start).
    fn attach_one(&mut self, hook: &Hook) -> Result<Verified> {
        let t0 = std::time::Instant::now();
        match self.kind {
            ProgramKind::TpBtf => {
                let btf = self
                    .btf
                    .as_ref()
                    .context("tp_btf needs the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
                let prog: &mut BtfTracePoint = self
                    .ebpf
                    .program_mut(hook.programs.btf)
                    .ok_or_else(|| {
                        anyhow!("program {} missing from the object", hook.programs.btf)
                    })?
                    .try_into()?;
                prog.load(hook.event, btf)?;
                let verified = Verified::of(t0, prog.info());
                prog.attach()?;
                Ok(verified)
            }
            ProgramKind::RawTp => {
                let prog: &mut RawTracePoint = self
                    .ebpf
                    .program_mut(hook.programs.raw)
                    .ok_or_else(|| {
                        anyhow!("program {} missing from the object", hook.programs.raw)
                    })?
                    .try_into()?;
                prog.load()?;
                let verified = Verified::of(t0, prog.info());
                prog.attach(hook.event)?;
                Ok(verified)
            }
            ProgramKind::Classic => {
                let prog: &mut TracePoint = self
                    .ebpf
                    .program_mut(hook.programs.classic)
                    .ok_or_else(|| {
                        anyhow!("program {} missing from the object", hook.programs.classic)
                    })?
                    .try_into()?;
                prog.load()?;
                let verified = Verified::of(t0, prog.info());
                prog.attach(hook.system, hook.event)?;
                Ok(verified)
            }
        }
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

    /// Attaches the classic programs of `hooks` (given to `load` as `classic_hooks`).
    pub fn attach_classic_hooks(&mut self, hooks: &[ClassicHook]) -> Result<()> {
        for h in hooks {
            self.attach_classic(h.system, h.event, h.program)?;
        }
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
        let map = self.take_map(names::EVENTS)?;
        // Loading freed much of what aya parsed, but small blocks of it stay resident in the
        // heap; given back before the ring is mapped, the peak RSS is the larger of the load's
        // and the tracing's instead of their sum (compactsnoop, static build with the objects'
        // line records still in: 4.28 -> 4.08 MB at the peak, 3.96 MB while tracing).
        // SAFETY: malloc_trim only returns free memory of the allocator to the kernel.
        unsafe { libc::malloc_trim(0) };
        let draining = match self.transport {
            Transport::Ringbuf => Some(self.take_map(names::DRAINING)?),
            Transport::Perfbuf => None,
        };
        Events::open(map, draining, self.transport)
    }

    /// Takes the stack map out of the object, with the kernel's symbols.
    pub fn stacks(&mut self) -> Result<Stacks> {
        Stacks::new(self.take_map(names::STACKS)?)
    }

    /// Takes a map out of the object by name.
    pub fn take_map(&mut self, name: &str) -> Result<aya::maps::Map> {
        self.ebpf
            .take_map(name)
            .with_context(|| format!("{name} map missing"))
    }

    /// The run time and run count of each loaded program (counted by the kernel while
    /// `kernel.bpf_stats_enabled` is 1).
    pub fn program_stats(&self) -> Vec<crate::aggregate::ProgramStats> {
        self.ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(crate::aggregate::ProgramStats {
                    name: name.to_owned(),
                    run_time: info.run_time(),
                    runs: info.run_count(),
                })
            })
            .collect()
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

    /// Writes the sink's header, runs the event loop until it ends (signal, deadline, reader
    /// gone), reports lost events on stderr and ends the sink's stream. A write error other
    /// than a broken pipe is returned (after the losses are reported).
    pub async fn trace(
        &mut self,
        sink: &mut dyn Sink,
        duration: Option<Duration>,
        interval: Option<Duration>,
        debug: bool,
    ) -> Result<End> {
        let mut events = self.events()?;
        let logger = match if debug { self.logger() } else { None } {
            // SAFETY: the logger owns its ring buffer's fd and lives inside the AsyncFd, so the
            // fd stays open for as long as it is registered.
            Some(l) => {
                Some(unsafe { AsyncFd::register(l) }.context("watching the kernel-side log")?)
            }
            None => None,
        };
        // Before the header: a script that sees it may signal at once.
        let signals = Signals::install()?;
        let ran = match sink.header() {
            Ok(()) => run(&mut events, sink, signals, duration, interval, logger).await,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(End::ReaderGone),
            Err(e) => Err(e),
        };
        let losses = self.losses(&events);
        self.report_losses(&losses);
        let end = ran.map_err(crate::output::write_failed)?;
        if end != End::ReaderGone {
            match sink.end(&Ending { end, losses }) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(crate::output::write_failed(e)),
            }
        }
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

    /// What this run could not show, from the kernel's counters and the transport's.
    pub fn losses(&self, events: &Events) -> Losses {
        let c = self.counters();
        Losses {
            lost: c[Counter::Lost as usize] + events.lost,
            missed: self.kernel_misses(),
            stacks_lost: c[Counter::StackLost as usize],
            uncounted: c[Counter::HistogramFull as usize],
        }
    }

    /// Prints lost-event counts to stderr: `<tool>: N events lost` (documented in the README).
    pub fn report_losses(&self, losses: &Losses) {
        let c = self.counters();
        if losses.lost > 0 {
            eprintln!("{}: {} events lost", self.tool, losses.lost);
        }
        match losses.missed {
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
        if losses.stacks_lost > 0 {
            eprintln!("{}: {} kernel stacks lost", self.tool, losses.stacks_lost);
        }
        if losses.uncounted > 0 {
            eprintln!(
                "{}: {} events lost: not counted, their histogram groups were beyond the {} the \
                 kernel's map holds",
                self.tool,
                losses.uncounted,
                tracer_common::histogram::MAX_GROUPS
            );
        }
        debug!(
            "ends without a begin: {}, begin map full: {}",
            c[Counter::MissedBegin as usize],
            c[Counter::BeginMapFull as usize]
        );
    }
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

/// What loading one program took: the time from the start of its load (the verifier's work,
/// most of it) and the instructions the kernel's verifier walked (5.16+ reports them).
struct Verified {
    load: std::time::Duration,
    instructions: Option<u32>,
}

impl Verified {
    fn of(
        t0: std::time::Instant,
        info: Result<aya::programs::ProgramInfo, aya::programs::ProgramError>,
    ) -> Verified {
        Verified {
            load: t0.elapsed(),
            instructions: info.ok().and_then(|i| i.verified_instruction_count()),
        }
    }
}
