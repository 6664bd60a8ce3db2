//! Dashboards: one run (its panels stacked, then its table), or several (each panel side by
//! side, one column per run on a shared time axis, then the table of rates compared), drawn
//! the same way into a PNG or an SVG.

mod panels;
mod style;
mod table;

pub use table::RULE;

use std::{
    collections::BTreeMap,
    io::BufWriter,
    ops::Range,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail};
use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use self::panels::{Res, secs};
use crate::{
    model::{Format, Run, Sym},
    stats::{self, Patterns, Row},
    time::human_duration,
};

/// What the dashboard is asked to show.
#[derive(Debug, Clone)]
pub struct Options {
    /// Width of a bin of the fallback timelines.
    pub bin_ns: i64,
    /// One label per run (the comparison's names).
    pub labels: Vec<String>,
}

/// The image formats, by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    pub fn of(path: &Path) -> Option<ImageFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(ImageFormat::Png),
            "svg" => Some(ImageFormat::Svg),
            _ => None,
        }
    }
}

const TITLE_H: u32 = 84;
const COMPACTION_H: u32 = 400;
const LANES_H: u32 = 130;
const LATENCY_H: u32 = 320;
const FALLBACKS_H: u32 = 300;
const HEAT_ROW_H: u32 = 28;
const HEAT_FIXED_H: u32 = 100;
const SINGLE_W: u32 = 1600;
const COLUMN_W: u32 = 1000;

/// Everything the drawing needs, computed once for every output.
struct Dashboard<'a> {
    runs: Vec<&'a Run>,
    labels: Vec<String>,
    width: u32,
    /// The shared time axis, seconds.
    x: Range<f64>,
    latency: Range<f64>,
    bin_ns: i64,
    fallback_max: u64,
    heat_origin_ns: i64,
    heat_width_ns: i64,
    heat: Vec<Patterns>,
    rows: Vec<Vec<Row>>,
    compared: Vec<stats::Compared>,
    status_colours: BTreeMap<String, RGBColor>,
}

impl<'a> Dashboard<'a> {
    fn new(runs: &'a [Run], opts: &Options) -> Dashboard<'a> {
        let runs: Vec<&Run> = runs.iter().collect();
        let n = runs.len();
        let (lo, hi) = runs.iter().fold((0i64, 1i64), |(lo, hi), r| {
            let (a, b) = r.time_span_ns();
            (lo.min(a), hi.max(b))
        });
        let heat_width_ns = stats::round_width_ns(hi - lo, if n == 1 { 24 } else { 12 });
        let heat = aligned_patterns(&runs, lo, hi, heat_width_ns);
        let fallback_max = runs
            .iter()
            .map(|r| panels::fallback_y_max(r, lo, hi, opts.bin_ns))
            .max()
            .unwrap_or(0);
        let rows: Vec<Vec<Row>> = runs.iter().map(|r| stats::rows(r)).collect();
        let pairs: Vec<(&Run, Vec<Row>)> = runs.iter().copied().zip(rows.iter().cloned()).collect();
        let compared = if n > 1 {
            stats::compare(&pairs)
        } else {
            Vec::new()
        };
        // Statuses the palette does not know get colours in the order of their names.
        let mut status_colours = BTreeMap::new();
        let mut names: Vec<&str> = runs
            .iter()
            .flat_map(|r| r.compactions.iter().map(|c| r.names.name(c.status)))
            .collect();
        names.sort_unstable();
        names.dedup();
        for (i, name) in names.into_iter().enumerate() {
            status_colours.insert(name.to_owned(), style::status_colour(name, i));
        }
        Dashboard {
            latency: panels::latency_range(&runs),
            runs,
            labels: opts.labels.clone(),
            width: if n == 1 {
                SINGLE_W
            } else {
                (COLUMN_W * n as u32).max(SINGLE_W)
            },
            x: secs(lo)..secs(hi),
            bin_ns: opts.bin_ns,
            fallback_max,
            heat_origin_ns: lo,
            heat_width_ns,
            heat,
            rows,
            compared,
            status_colours,
        }
    }

    fn heat_h(&self) -> u32 {
        let rows = self.heat.iter().map(|p| p.rows.len()).max().unwrap_or(0) as u32;
        HEAT_FIXED_H + HEAT_ROW_H * rows.max(1)
    }

    fn title_h(&self) -> u32 {
        if self.runs.len() == 1 {
            TITLE_H
        } else {
            48 + 22 * self.runs.len() as u32
        }
    }

    fn table_h(&self) -> u32 {
        let rows = if self.runs.len() == 1 {
            self.rows[0].len()
        } else {
            self.compared.len()
        };
        table::HEAD_H + table::ROW_H * rows as u32 + table::FOOT_H
    }

    fn height(&self) -> u32 {
        self.title_h()
            + COMPACTION_H
            + LANES_H
            + LATENCY_H
            + FALLBACKS_H
            + self.heat_h()
            + self.table_h()
    }

    fn colour(&self) -> impl Fn(&Run, Sym) -> RGBColor + '_ {
        |run, s| {
            self.status_colours
                .get(run.names.name(s))
                .copied()
                .unwrap_or(BLACK)
        }
    }
}

/// Fallback patterns of each run, with the same rows in the same order in every run (the
/// union, largest in all first), so that side-by-side heatmaps line up.
fn aligned_patterns(runs: &[&Run], origin: i64, end: i64, width: i64) -> Vec<Patterns> {
    let each: Vec<Patterns> = runs
        .iter()
        .map(|r| stats::patterns(r, origin, end, width))
        .collect();
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &each {
        for (label, counts) in &p.rows {
            *totals.entry(label).or_default() += counts.iter().sum::<u64>();
        }
    }
    let mut order: Vec<(&str, u64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let ncols = stats::bin_counts([], origin, end, width).len();
    each.iter()
        .map(|p| Patterns {
            rows: order
                .iter()
                .map(|(label, _)| {
                    let counts = p
                        .rows
                        .iter()
                        .find(|(l, _)| l == label)
                        .map_or_else(|| vec![0; ncols], |r| r.1.clone());
                    ((*label).to_owned(), counts)
                })
                .collect(),
        })
        .collect()
}

/// The first lines: what ran where, when, and for how long, and what the file lacks.
fn title<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &Dashboard<'_>) -> Res<DB> {
    let at = |x, y| (x, y);
    let top = Pos::new(HPos::Left, VPos::Top);
    let describe = |r: &Run| {
        let host = r.meta.host.as_deref().unwrap_or("host not recorded");
        let kernel = r.meta.kernel.as_deref().unwrap_or("not recorded");
        format!("{host} · kernel {kernel}")
    };
    let details = |r: &Run| {
        let mut tools = r.meta.tools.iter();
        let first = tools.next().cloned().unwrap_or_default();
        let rest: Vec<&str> = tools.map(String::as_str).collect();
        let tools = if rest.is_empty() {
            first
        } else {
            format!("{first} ({})", rest.join(", "))
        };
        let start = r.meta.start.as_deref().unwrap_or("start not recorded");
        let length = human_duration(r.meta.duration_ns);
        let cut = if r.meta.ended {
            ""
        } else {
            " (no end: to the last line)"
        };
        format!("{tools} · started {start} · {length}{cut}")
    };
    let notes = |r: &Run| {
        let mut n = format!(
            "events lost (buffers full): {} · programs skipped by the kernel: {}",
            r.meta.lost, r.meta.missed
        );
        if r.meta.format == Format::PlotFragmentation {
            n.push_str(
                " · plot-fragmentation file: fallbacks' index, node and zone not shown (not measured there); \
                 migrate types renamed as the kernel names them",
            );
        }
        n
    };
    if d.runs.len() == 1 {
        let r = d.runs[0];
        area.draw(&Text::new(
            format!("Fragmentation on {}", describe(r)),
            at(16, 10),
            style::bold(22).pos(top),
        ))?;
        area.draw(&Text::new(details(r), at(16, 40), style::text(14).pos(top)))?;
        area.draw(&Text::new(
            notes(r),
            at(16, 62),
            style::text(12).color(&style::GREY).pos(top),
        ))?;
    } else {
        area.draw(&Text::new(
            format!("Fragmentation compared: {}", d.labels.join(" vs ")),
            at(16, 10),
            style::bold(22).pos(top),
        ))?;
        for (i, r) in d.runs.iter().enumerate() {
            area.draw(&Text::new(
                format!("{}: {} · {}", d.labels[i], describe(r), details(r)),
                at(16, 42 + 22 * i as i32),
                style::text(14).pos(top),
            ))?;
        }
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &Dashboard<'_>) -> Res<DB> {
    root.fill(&WHITE)?;
    let (head, rest) = root.split_vertically(d.title_h());
    title(&head, d)?;
    let (compaction, rest) = rest.split_vertically(COMPACTION_H);
    let (lanes, rest) = rest.split_vertically(LANES_H);
    let (latency, rest) = rest.split_vertically(LATENCY_H);
    let (fallbacks, rest) = rest.split_vertically(FALLBACKS_H);
    let (heat, table_area) = rest.split_vertically(d.heat_h());
    let n = d.runs.len();
    let colour = d.colour();
    let columns = |a: &DrawingArea<DB, Shift>| a.split_evenly((1, n));
    let (c, l, t, f, h) = (
        columns(&compaction),
        columns(&lanes),
        columns(&latency),
        columns(&fallbacks),
        columns(&heat),
    );
    for (i, run) in d.runs.iter().enumerate() {
        let name = |what: &str| {
            if n == 1 {
                what.to_owned()
            } else {
                format!("{}: {what}", d.labels[i])
            }
        };
        panels::compaction(
            &c[i],
            run,
            d.x.clone(),
            &name(
                "compaction runs: fragmentation index for their order at the start (colour: status, size: order)",
            ),
            &colour,
        )?;
        panels::lanes(
            &l[i],
            run,
            d.x.clone(),
            &name("compaction runs without an index: whole zone (order -1), none recorded"),
            &colour,
        )?;
        panels::latency(
            &t[i],
            run,
            d.x.clone(),
            d.latency.clone(),
            &name("latency of compaction runs and reclaims"),
        )?;
        panels::fallbacks(
            &f[i],
            run,
            d.x.clone(),
            d.bin_ns,
            d.fallback_max,
            &name("fallbacks"),
        )?;
        panels::heatmap(
            &h[i],
            &d.heat[i],
            d.heat_origin_ns,
            d.heat_width_ns,
            &name("fallbacks by pattern, allocation's migrate type → the type it fell back to"),
        )?;
    }
    if n == 1 {
        table::single(&table_area, &d.rows[0], d.runs[0].meta.duration_ns)?;
    } else {
        table::compared(&table_area, &d.compared, &d.labels)?;
    }
    root.present()
}

/// Draws the dashboard of `runs` (one: a single run; more: compared) into each output, PNG
/// or SVG by its extension.
pub fn render(runs: &[Run], opts: &Options, outputs: &[PathBuf]) -> Result<()> {
    if runs.is_empty() {
        bail!("no run to draw");
    }
    if runs.len() > 1 && opts.labels.len() != runs.len() {
        bail!("{} labels for {} runs", opts.labels.len(), runs.len());
    }
    style::fonts().map_err(|e| anyhow!(e))?;
    check_bins(runs, opts.bin_ns)?;
    let d = Dashboard::new(runs, opts);
    let (w, h) = (d.width, d.height());
    for out in outputs {
        match ImageFormat::of(out) {
            Some(ImageFormat::Svg) => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                    draw(&root, &d).map_err(|e| anyhow!("cannot draw {}: {e}", out.display()))?;
                }
                std::fs::write(out, svg)
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
            Some(ImageFormat::Png) => {
                let mut rgb = vec![0u8; w as usize * h as usize * 3];
                {
                    let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                    draw(&root, &d).map_err(|e| anyhow!("cannot draw {}: {e}", out.display()))?;
                }
                write_png(out, &rgb, w, h)
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
            None => bail!(
                "{}: the output's name must end in .png or .svg",
                out.display()
            ),
        }
    }
    Ok(())
}

/// Most bins a timeline may have: more than a chart has pixels by far, and a bound on the
/// memory a damaged timestamp could ask for.
const MAX_BINS: i128 = 200_000;

/// Refuses a `--bin` that cuts a run's time axis into more than `MAX_BINS` bins.
fn check_bins(runs: &[Run], bin_ns: i64) -> Result<()> {
    for r in runs {
        let (lo, hi) = r.time_span_ns();
        let bins = (i128::from(hi) - i128::from(lo)) / i128::from(bin_ns.max(1));
        if bins > MAX_BINS {
            bail!(
                "a run spans {:.0} s, which --bin {} s cuts into more than {MAX_BINS} bins: give a wider --bin",
                (i128::from(hi) - i128::from(lo)) as f64 / 1e9,
                bin_ns as f64 / 1e9
            );
        }
    }
    Ok(())
}

fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}
