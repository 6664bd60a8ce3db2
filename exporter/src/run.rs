//! The exporter's life: listen, load and attach, give up the privileges scrapes do not need,
//! serve until SIGINT or SIGTERM, then detach everything (dropping the programs' descriptors).

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result, bail};
use log::debug;
use prometheus_client::registry::Registry;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};
use tracer_user::{
    aggregate::Aggregation,
    cgroups::Resolver,
    privilege::{self, CAP_BPF, CAP_SYS_ADMIN, NOBODY},
};

use crate::{
    http,
    metrics::{self, Format, Source, Stalls},
    options::Opts,
};

/// What the HTTP server asks for: the registry, encoded for the client.
struct Scrapes(Registry);

impl http::Metrics for Scrapes {
    fn scrape(&self, accept: Option<&str>) -> Result<(&'static str, String), String> {
        let format = Format::negotiate(accept);
        metrics::encode(&self.0, format)
            .map(|body| (format.content_type(), body))
            .map_err(|_| "the kernel's maps could not be read".to_owned())
    }
}

/// Whether the maps can be read by a thread that is `nobody` with only `keep`: tried in a
/// thread of its own, which exits afterwards (credentials are per thread).
fn readable_with(stalls: &Stalls, keep: &[u32]) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            privilege::become_in_this_thread(NOBODY, keep)?;
            let source = stalls.0.lock().unwrap_or_else(|e| e.into_inner());
            source.aggregation.read().map(|_| ())
        })
        .join()
        .unwrap_or_else(|_| bail!("the privilege probe panicked"))
    })
}

/// Becomes `nobody` with the fewest capabilities that still read the maps, found by trying:
/// none where the kernel lets any holder of a map's descriptor read it (5.19+, or
/// `kernel.unprivileged_bpf_disabled=0`), else CAP_BPF (CAP_SYS_ADMIN before 5.8).
fn drop_privileges(stalls: &Stalls) -> Result<Vec<u32>> {
    let bpf_cap = if privilege::kernel_has_cap_bpf() {
        CAP_BPF
    } else {
        CAP_SYS_ADMIN
    };
    let setting = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let keep = match readable_with(stalls, &[]) {
        Ok(()) => Vec::new(),
        Err(e) => {
            debug!(
                "without capabilities the maps cannot be read here \
                 (kernel.unprivileged_bpf_disabled={setting}): {e:#}"
            );
            vec![bpf_cap]
        }
    };
    privilege::become_for_good(NOBODY, &keep)?;
    let source = stalls.0.lock().unwrap_or_else(|e| e.into_inner());
    source
        .aggregation
        .read()
        .context("the maps cannot be read after dropping privileges")?;
    debug!(
        "running as nobody with {} (kernel.unprivileged_bpf_disabled={setting})",
        if keep.is_empty() {
            "no capabilities".to_owned()
        } else {
            keep.iter()
                .map(|&c| privilege::cap_name(c))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(keep)
}

pub async fn run(opts: Opts) -> Result<()> {
    // Before anything is loaded: a port in use is one sentence and nothing to undo.
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT")?;
    let aggregation = Aggregation::start(opts.debug)?;
    for a in aggregation.attached() {
        debug!("attached {a}");
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let stalls = Stalls(Arc::new(Mutex::new(Source {
        aggregation,
        cgroups: Resolver::new(),
        exported: BTreeSet::new(),
        top_cgroups: usize::from(opts.top_cgroups),
        kernel,
    })));
    drop_privileges(&stalls)?;
    let scrapes: Arc<dyn http::Metrics> = Arc::new(Scrapes(metrics::registry(stalls)));
    let addr = listener.local_addr().unwrap_or(opts.listen);
    // The line a script or test waits for: from now on scrapes are answered.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "Serving memory-stall metrics on http://{addr}/metrics")
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
    }
    tokio::select! {
        () = http::run(listener, scrapes) => {}
        _ = terminate.recv() => debug!("SIGTERM"),
        _ = interrupt.recv() => debug!("SIGINT"),
    }
    Ok(())
}
