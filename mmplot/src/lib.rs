//! mmplot: one file per run of everything the fragmentation dashboards need (`record`, from
//! compactsnoop's and drsnoop's JSON Lines), and the dashboards themselves (`render`: one run,
//! or several compared), as PNG and SVG.
//!
//! The data flows one way: a file → `read` → a `model::Run` → `stats` (bins, totals, rates,
//! the comparison) → `render`.

pub mod model;
pub mod options;
pub mod read;
pub mod record;
pub mod render;
pub mod stats;
pub mod time;
