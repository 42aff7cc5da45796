//! An SVG of offered vs carried rate per direction, with the package's cap drawn across it.
//!
//! SVG only: plotters' bitmap backend needs a font rasterizer and system fonts, while SVG text
//! is left to the viewer, so this stays dependency-light and works on a bare build machine.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::error::PlotError;
use super::stats::{BandwidthStats, DirectionStats};

/// A series' legend label, its points and its line style.
type Series<'a> = (&'a str, &'a [(f64, f64)], ShapeStyle);

const PANEL_HEIGHT: u32 = 420;
const WIDTH: u32 = 1100;

/// "150 Mbps" for 150_000_000 bit/s; fractions keep up to 6 decimals, trailing zeros trimmed.
fn format_mbps(rate_bps: u64) -> String {
    let whole = rate_bps / 1_000_000;
    let frac = rate_bps % 1_000_000;
    if frac == 0 {
        format!("{whole} Mbps")
    } else {
        let f = format!("{frac:06}");
        format!("{whole}.{} Mbps", f.trim_end_matches('0'))
    }
}

/// Step-shaped points (seconds since origin, Mbps) for one series; gaps drop to zero.
fn steps(
    d: &DirectionStats,
    origin: u64,
    interval_ns: u64,
    bits: impl Fn(&super::IntervalStats) -> u64,
) -> Vec<(f64, f64)> {
    let secs = |ns: u64| ns.saturating_sub(origin) as f64 / 1e9;
    let mbps = |b: u64| b as f64 * 1e9 / interval_ns as f64 / 1e6;
    let mut pts = Vec::with_capacity(d.intervals.len() * 2 + 2);
    let mut prev: Option<u64> = None;
    for r in &d.intervals {
        let start = secs(r.start_ns);
        let end = secs(r.start_ns.saturating_add(interval_ns));
        if prev != r.index.checked_sub(1) {
            if let Some(&(x, _)) = pts.last() {
                pts.push((x, 0.0));
            }
            pts.push((start, 0.0));
        }
        let v = mbps(bits(r));
        pts.push((start, v));
        pts.push((end, v));
        prev = Some(r.index);
    }
    if let Some(&(x, _)) = pts.last() {
        pts.push((x, 0.0));
    }
    pts
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What every panel shares: where errors point, the time axis and the package's cap.
struct Frame<'a> {
    path: &'a Path,
    origin: u64,
    interval: u64,
    cap_mbps: f64,
    cap_label: String,
    cap_legend: String,
}

/// The chart of one panel: seconds across, Mbps up.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draw the SVG into a string.
fn render(stats: &BandwidthStats, path: &Path) -> Result<String, PlotError> {
    let cfg = &stats.config;
    let cap_label = format!("{} cap", format_mbps(cfg.rate_bps));
    let frame = Frame {
        path,
        origin: stats.origin_ns.unwrap_or(0),
        interval: cfg.interval_ns.max(1),
        cap_mbps: cfg.rate_bps as f64 / 1e6,
        cap_legend: format!("{cap_label} (each direction)"),
        cap_label,
    };
    let mut panels: Vec<(&str, &DirectionStats)> = [
        ("inbound (toward the servers)", &stats.inbound),
        ("outbound (from the servers)", &stats.outbound),
    ]
    .into_iter()
    .filter(|(_, d)| d.limited || !d.intervals.is_empty())
    .collect();
    if panels.is_empty() {
        panels.push(("inbound (toward the servers)", &stats.inbound));
    }
    let height = PANEL_HEIGHT * panels.len() as u32 + 40;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let title = format!(
            "Bandwidth package: offered vs carried rate ({}, {} per direction, shared by all EIPs)",
            cfg.mode,
            format_mbps(cfg.rate_bps)
        );
        let root = root
            .titled(&title, ("sans-serif", 22))
            .map_err(|e| draw_err(path, e))?;
        let areas = root.split_evenly((panels.len(), 1));
        for (area, (name, d)) in areas.iter().zip(panels) {
            draw_panel(area, name, d, &frame)?;
        }
        root.present().map_err(|e| draw_err(path, e))?;
    }
    Ok(svg)
}

/// One direction's panel: its offered, dropped and carried rates, the cap when the package
/// limits that direction, and the legend.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    name: &str,
    d: &DirectionStats,
    f: &Frame<'_>,
) -> Result<(), PlotError> {
    let path = f.path;
    let offered = steps(d, f.origin, f.interval, |r| r.offered_bits);
    let carried = steps(d, f.origin, f.interval, |r| r.carried_bits);
    let dropped = steps(d, f.origin, f.interval, |r| r.dropped_bits);
    let x_max = offered
        .iter()
        .chain(&carried)
        .map(|p| p.0)
        .fold(f.interval as f64 / 1e9, f64::max);
    let y_top = offered
        .iter()
        .chain(&carried)
        .map(|p| p.1)
        .fold(if d.limited { f.cap_mbps } else { 0.0 }, f64::max);
    // Headroom above the highest line keeps the legend (upper right) off the data.
    let y_max = if y_top > 0.0 { y_top * 1.5 } else { 1.0 };
    let caption = if d.limited {
        name.to_string()
    } else {
        format!("{name}: not limited by the package")
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| draw_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("time since the first packet (s)")
        .y_desc("rate (Mbps)")
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        // Faint minor lines: the cap, not the grid, should be the strongest horizontal.
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(|e| draw_err(path, e))?;
    // Drawn in this order so that carried (what left the gateway) is never hidden by
    // dropped, which in police mode at twice the rate runs right along the cap.
    let series: [Series<'_>; 3] = [
        ("offered", offered.as_slice(), BLUE.stroke_width(2)),
        ("dropped", dropped.as_slice(), RED.mix(0.7).stroke_width(1)),
        (
            "carried",
            carried.as_slice(),
            RGBColor(0, 150, 0).stroke_width(3),
        ),
    ];
    for (label, pts, style) in series {
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), style))
            .map_err(|e| draw_err(path, e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    if d.limited {
        draw_cap(&mut chart, x_max, f)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(path, e))
}

/// The package's cap across a panel, labelled at its left end.
fn draw_cap(chart: &mut Chart<'_, '_>, x_max: f64, f: &Frame<'_>) -> Result<(), PlotError> {
    let (path, cap_mbps) = (f.path, f.cap_mbps);
    // Dashed and on top, so a carried line that sits on the cap shows through it.
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, cap_mbps), (x_max, cap_mbps)],
            10,
            6,
            BLACK.stroke_width(2),
        ))
        .map_err(|e| draw_err(path, e))?
        .label(f.cap_legend.as_str())
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    // The label sits on a white box just above the line's left end, where no data line can
    // run through the text.
    let width = f.cap_label.chars().count() as i32 * 10 + 10;
    chart
        .draw_series(std::iter::once(
            EmptyElement::at((x_max * 0.012, cap_mbps))
                + Rectangle::new([(0, -27), (width, -5)], WHITE.mix(0.9).filled())
                + Text::new(
                    f.cap_label.clone(),
                    (5, -25),
                    ("sans-serif", 17).into_font().style(FontStyle::Bold),
                ),
        ))
        .map_err(|e| draw_err(path, e))?;
    Ok(())
}

/// The same plot as [`write_svg`], as SVG text (for embedding in the HTML report); `name`
/// stands in for a file name in error messages.
pub fn svg_string(stats: &BandwidthStats, name: &str) -> Result<String, PlotError> {
    render(stats, Path::new(name))
}

/// Plot offered, carried and dropped rate (Mbps) over time (s) per direction, with the cap as a
/// labelled horizontal line, to an SVG at `path` (written to a temporary file, then renamed).
pub fn write_svg(stats: &BandwidthStats, path: impl AsRef<Path>) -> Result<(), PlotError> {
    let path = path.as_ref();
    let svg = render(stats, path)?;
    // The error names the destination: the temporary file is an implementation detail.
    crate::output::write_whole(path, svg.as_bytes()).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbps_labels() {
        assert_eq!(format_mbps(150_000_000), "150 Mbps");
        assert_eq!(format_mbps(1_500_000), "1.5 Mbps");
        assert_eq!(format_mbps(1), "0.000001 Mbps");
    }
}
