//! The man pages' sections that both tools share, `{tool}` standing for the tool's name. What
//! each tool says of itself lives beside its options (`<tool>/src/options.rs`, `MANUAL`).

/// EXIT STATUS: as `tracer_user::run_tool` and clap end the tools.
pub const EXIT_STATUS: &str = "\
- 0: the trace ended: Ctrl-C (SIGINT), SIGTERM, the end of -d, or a reader of the output that \
went away (a closed pipe, as with | head); also after -h and -V. Lost events do not change it.
- 1: a run-time failure: missing privileges, a kernel without a feature the tool needs, \
programs the kernel refused, output that cannot be written (a full disk, an I/O error). One \
sentence on stderr, after \"{tool}: \", says which.
- 2: a usage error: an unknown flag, a bad value, or flags that cannot go together, said in \
one sentence on stderr.";

/// KERNEL REQUIREMENTS: what both tools need; each tool's `Manual::kernel` follows.
pub const KERNEL_REQUIREMENTS: &str = "\
- Linux with tracepoints and tracefs (mounted at /sys/kernel/tracing by the tool when it is \
not), and BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux) for all that the tool shows: \
what it does without BTF follows below. Events come through a BPF ring buffer (Linux 5.8 and \
later) or else a perf buffer (--transport perfbuf).
- Root, or the capabilities CAP_BPF and CAP_PERFMON.
- No kprobes, no kernel headers, no CONFIG_KALLSYMS_ALL: struct offsets come from BTF and \
record layouts from tracefs format files at start-up, so nothing about a kernel's layout is \
compiled in. Which kind of program hooks the tracepoints is decided at start-up from what the \
kernel has; --debug says which and why, and --hooks forces one.";

/// LOST EVENTS: what `Session::report_losses` prints and the JSON end line counts.
pub const LOST_EVENTS: &str = "\
Lost events are never silent where the kernel can tell. When the kernel could not hand some \
events over because the buffer between it and {tool} was full, stderr says so at exit, in a \
line of its own:

    {tool}: N events lost

\"{tool}: N kernel stacks lost\" says the same of -K stacks. \"{tool}: N events missed: ...\" \
counts events the kernel never handed to the programs: it skips a BPF program when its hook \
fires on a CPU already running one (an interrupt in the middle of another tracer's program), \
and counts the skips (recursion_misses) since Linux 5.12 for some kinds of program and since \
6.7 for classic tracepoints; where it does not count them they go unseen, by {tool} as by any \
BPF tracer.

With -j the end line carries the same counts as \"lost\", \"stacks_lost\" and \"missed\" \
(null where the kernel does not count skips). Losses do not change the exit status.";

/// The shared text for `tool`.
pub fn for_tool(text: &str, tool: &str) -> String {
    text.replace("{tool}", tool)
}
