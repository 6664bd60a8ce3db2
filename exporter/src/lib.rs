//! memstall_exporter: the tools' programs in counting mode, their maps served to Prometheus.
//!
//! `options` is the command line (a library module, so that the man page and completions come
//! from the same definition); `metrics` the metric families read from the kernel's maps at
//! scrape time; `http` the bounded server; `run` ties them together: load and attach, drop the
//! privileges scrapes do not need, serve until SIGINT or SIGTERM.

pub mod http;
pub mod metrics;
pub mod options;
mod run;

pub use run::run;
