//! Per-CPU counters the programs keep for user space (`names::STATS`, a per-CPU array).

/// Index into the per-CPU `STATS` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// An event that could not be written to the event buffer (it was full).
    Lost = 0,
    /// An end seen without its begin (the tool started mid-run, or the begin map was full).
    MissedBegin = 1,
    /// A begin that could not be stored because the begin map was full.
    BeginMapFull = 2,
    /// A kernel stack that could not be captured.
    StackLost = 3,
    /// An event of a histogram group the histogram map had no room for (`-H`).
    HistogramFull = 4,
}

/// Number of entries in the `STATS` array.
pub const NR_COUNTERS: u32 = 5;

impl Counter {
    pub const ALL: [Counter; NR_COUNTERS as usize] = [
        Counter::Lost,
        Counter::MissedBegin,
        Counter::BeginMapFull,
        Counter::StackLost,
        Counter::HistogramFull,
    ];
}
