//! A real Prometheus server for the exporter's tests: Debian's `prometheus`, installed with apt
//! when missing, started on a loopback port with its own configuration and data in a temporary
//! directory, scraping given targets every second; queried through its HTTP API.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{child::Proc, http};

/// `prometheus` and `promtool`, installing Debian's package when they are missing.
pub fn ensure_installed() -> Result<()> {
    let have = |b: &str| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("prometheus") && have("promtool") {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args([
            "-o",
            "DPkg::Lock::Timeout=600",
            "install",
            "-y",
            "--no-install-recommends",
            "prometheus",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get to install prometheus")?;
    if !status.success() || !have("prometheus") {
        bail!("installing Debian's prometheus package failed ({status})");
    }
    Ok(())
}

/// A running Prometheus server, stopped and its directory removed on drop.
pub struct Prometheus {
    proc: Option<Proc>,
    dir: PathBuf,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts a server scraping `targets` every second (job `memstall`) and waits until it is
    /// ready.
    pub fn start(targets: &[SocketAddr]) -> Result<Prometheus> {
        ensure_installed()?;
        let port = http::free_port();
        let dir = std::env::temp_dir().join(format!("tracer-tests-prometheus-{port}"));
        std::fs::create_dir_all(dir.join("data"))?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: memstall\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn");
        let proc = Proc::spawn("prometheus", &mut cmd)?;
        let p = Prometheus {
            proc: Some(proc),
            dir,
            addr,
        };
        let t0 = Instant::now();
        loop {
            if http::get(addr, "/-/ready", None).is_ok_and(|r| r.status == 200) {
                return Ok(p);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("Prometheus on {addr} was not ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant query at `time` (seconds since the epoch; now when `None`): each result's
    /// labels and value.
    pub fn query(
        &self,
        expr: &str,
        time: Option<f64>,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let mut path = format!("/api/v1/query?query={}", encode(expr));
        if let Some(t) = time {
            path.push_str(&format!("&time={t:.3}"));
        }
        let r = http::get(self.addr, &path, None)?;
        let v: Value = serde_json::from_str(&r.body)
            .with_context(|| format!("Prometheus answered {} with: {}", r.status, r.body))?;
        if v["status"] != "success" {
            bail!("query `{expr}` failed: {}", r.body);
        }
        let mut out = Vec::new();
        for item in v["data"]["result"].as_array().context("no result array")? {
            let labels = item["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let value = item["value"][1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            out.push((labels, value));
        }
        Ok(out)
    }

    /// Waits until the newest sample of `up` is at least `after` (seconds since the epoch),
    /// and returns that sample's time: a scrape that happened after `after`.
    pub fn scraped_after(&self, after: f64) -> Result<f64> {
        let t0 = Instant::now();
        loop {
            let r = http::get(
                self.addr,
                &format!(
                    "/api/v1/query?query={}",
                    encode("timestamp(up{job=\"memstall\"})")
                ),
                None,
            )?;
            let v: Value = serde_json::from_str(&r.body)?;
            let ts = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            let up = self.query("up{job=\"memstall\"}", None)?;
            if let Some(ts) = ts
                && ts >= after
            {
                if up.first().is_none_or(|(_, v)| *v != 1.0) {
                    bail!("Prometheus's scrape at {ts} failed: up = {up:?}");
                }
                return Ok(ts);
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("no scrape after {after} within 30 s (last at {ts:?})");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(libc::SIGTERM);
            let _ = p.finish(Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Seconds since the epoch now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC now, in ns: adds to a kernel timestamp to give wall
/// time.
pub fn wall_minus_mono_ns() -> i128 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    wall - crate::ktime_now_ns() as i128
}
