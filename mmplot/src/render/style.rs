//! Fonts, colours and marker sizes, chosen once for every panel.

use std::sync::OnceLock;

use plotters::{
    prelude::*,
    style::{FontStyle, register_font},
};

/// DejaVu Sans, regular and bold, cut down to the characters drawn (fonts/README.md): text
/// looks the same wherever a dashboard is rendered, and no font need be installed there.
const REGULAR: &[u8] = include_bytes!("../../fonts/DejaVuSans-subset.ttf");
const BOLD: &[u8] = include_bytes!("../../fonts/DejaVuSans-Bold-subset.ttf");

pub const FONT: &str = "sans-serif";

/// Registers the built-in fonts with plotters, once.
pub fn fonts() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, REGULAR)
            .map_err(|_| "the built-in regular font does not load".to_owned())?;
        register_font(FONT, FontStyle::Bold, BOLD)
            .map_err(|_| "the built-in bold font does not load".to_owned())
    })
    .clone()
}

pub fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

pub fn bold(size: u32) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK)
}

pub const GREY: RGBColor = RGBColor(110, 110, 110);
pub const LIGHT: RGBColor = RGBColor(225, 225, 225);

/// A colour per compaction status, the same in every dashboard: the kernel's `enum
/// compact_result` names (and plot-fragmentation's `failure`); others in the order met.
pub fn status_colour(name: &str, other_index: usize) -> RGBColor {
    match name {
        "success" => RGBColor(44, 160, 44),
        "complete" => RGBColor(31, 119, 180),
        "partial_skipped" => RGBColor(23, 190, 207),
        "skipped" => RGBColor(127, 127, 127),
        "no_suitable_page" | "failure" => RGBColor(214, 39, 40),
        "deferred" => RGBColor(148, 103, 189),
        "continue" => RGBColor(188, 189, 34),
        "contended" => RGBColor(255, 127, 14),
        "not_suitable_zone" => RGBColor(140, 86, 75),
        _ => OTHERS[other_index % OTHERS.len()],
    }
}

const OTHERS: [RGBColor; 4] = [
    RGBColor(227, 119, 194),
    RGBColor(0, 0, 0),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
];

/// Colours of the runs of a comparison, and of series within a panel.
pub const SERIES: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(44, 160, 44),
    RGBColor(140, 86, 75),
];

/// Marker radius of a compaction run of `order`: 2 px for order 0 and 1, one more every two
/// orders (7 px at order 10).
pub fn order_radius(order: i32) -> u32 {
    2 + (order.clamp(0, 20) as u32) / 2
}

/// White through yellow to red, by `f` in 0..=1.
pub fn heat(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let lerp = |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t) as u8;
    let (from, to, t) = if f < 0.5 {
        ((255, 255, 255), (255, 214, 102), f * 2.0)
    } else {
        ((255, 214, 102), (215, 48, 39), f * 2.0 - 1.0)
    };
    RGBColor(
        lerp(from.0, to.0, t),
        lerp(from.1, to.1, t),
        lerp(from.2, to.2, t),
    )
}
