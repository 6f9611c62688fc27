//! Figures for reports: one [`Chart`] (titled axes and series of points drawn as lines, dashed
//! lines, filled steps or dots) rendered to SVG text and to PNG bytes with plotters. Text uses the
//! DejaVu Sans font shipped in `fonts/`, so no system font library is needed.
//!
//! ```
//! use oodlab_plots::{Chart, Series, Style};
//! let roc = Chart {
//!     title: "ROC".into(),
//!     x_label: "false positive rate".into(),
//!     y_label: "true positive rate".into(),
//!     x_range: Some((0.0, 1.0)),
//!     y_range: Some((0.0, 1.0)),
//!     series: vec![Series { name: "ce".into(), points: vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)], style: Style::Line }],
//!     x_ticks: Vec::new(),
//! };
//! let svg = oodlab_plots::svg(&roc, (640, 480)).unwrap();
//! assert!(svg.starts_with("<svg"));
//! let png = oodlab_plots::png(&roc, (640, 480)).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

/// A 2-D chart: axes with titles and the series drawn on them, with a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Axis ranges; `None` fits the data (with a margin).
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
    /// Named ticks of the x axis, (position, label), for a categorical axis (the stages of a
    /// network, say); empty for a numeric axis.
    pub x_ticks: Vec<(f64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Line,
    Dashed,
    /// A histogram's outline: `points` are (left edge, height) of each bin and a last (right
    /// edge, 0); drawn as steps with a light fill.
    Steps,
    /// One dot per point (a scatter).
    Dots,
    /// A line through the points with a dot on each (values at categories).
    LineDots,
    /// Vertical intervals: `points` in pairs (x, low), (x, high), each pair drawn as a bar with
    /// caps (confidence intervals around a `LineDots` series); no legend entry of its own.
    Intervals,
}

#[derive(Debug, Error)]
pub enum PlotError {
    #[error("drawing the chart `{title}`: {reason}")]
    Draw { title: String, reason: String },
}

/// Colours of the series, in order (matplotlib's tab10, which most readers know).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The chart as an SVG document of `size` (width, height) pixels.
pub fn svg(chart: &Chart, size: (u32, u32)) -> Result<String, PlotError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        draw(&root, chart)?;
        root.present().map_err(|e| fail(chart, e))?;
    }
    Ok(out)
}

/// The chart as a PNG image of `size` (width, height) pixels.
pub fn png(chart: &Chart, size: (u32, u32)) -> Result<Vec<u8>, PlotError> {
    register_font();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(&root, chart)?;
        root.present().map_err(|e| fail(chart, e))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, size.0, size.1, image::ExtendedColorType::Rgb8)
        .map_err(|e| fail(chart, e))?;
    Ok(png)
}

fn fail<E: std::fmt::Debug>(chart: &Chart, e: E) -> PlotError {
    PlotError::Draw { title: chart.title.clone(), reason: format!("{e:?}") }
}

/// Registers the shipped font as plotters' `sans-serif`, once.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font, checked by the tests.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, include_bytes!("../fonts/DejaVuSans.ttf"));
    });
}

/// (min, max) of the values with a 5% margin; a flat range is widened to a unit around it.
fn fit(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let m = 0.05 * (hi - lo);
    (lo - m, hi + m)
}

/// The points of a polyline without those in the middle of a straight run: the same line, drawn
/// from fewer points. A ROC curve over 16,000 scores is mostly vertical and horizontal runs; drawn
/// point by point its SVG was 0.9 MB.
fn corners(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in points {
        if let [.., a, b] = out[..] {
            // b lies on the segment a → p, pointing the same way: it adds nothing to the line.
            let cross = (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
            let forward = (b.0 - a.0) * (p.0 - b.0) + (b.1 - a.1) * (p.1 - b.1) >= 0.0;
            if cross == 0.0 && forward {
                out.pop();
            }
        }
        out.push(p);
    }
    out
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| fail(chart, e);
    root.fill(&WHITE).map_err(err)?;
    let x = chart.x_range.unwrap_or_else(|| fit(chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.0))));
    let y = chart.y_range.unwrap_or_else(|| fit(chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.1))));
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(58)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(err)?;
    // A categorical axis labels its named positions only.
    let tick_label = |v: &f64| chart.x_ticks.iter().find(|(at, _)| (at - v).abs() < 1e-6).map(|(_, name)| name.clone()).unwrap_or_default();
    let mut mesh = ctx.configure_mesh();
    mesh.x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235));
    if !chart.x_ticks.is_empty() {
        // Ticks at whole steps across the range: with the categories at 0, 1, 2, … each lands
        // on one; the light grid between them is left out.
        mesh.x_labels(((x.1 - x.0).round() as usize + 1).max(2)).x_label_formatter(&tick_label).disable_x_mesh();
    }
    mesh.draw().map_err(err)?;
    // Each series takes the next colour, but intervals take their line's (the series before).
    let mut next_color = 0;
    for s in &chart.series {
        let color = if s.style == Style::Intervals {
            PALETTE[next_color.max(1) - 1]
        } else {
            next_color = (next_color + 1) % PALETTE.len();
            PALETTE[(next_color + PALETTE.len() - 1) % PALETTE.len()]
        };
        let legend = |c: RGBColor| move |(lx, ly): (i32, i32)| PathElement::new(vec![(lx, ly), (lx + 18, ly)], c.stroke_width(3));
        let points = s.points.iter().copied().filter(|(a, b)| a.is_finite() && b.is_finite());
        // A series without a name (a reference line) has no legend entry.
        macro_rules! named {
            ($anno:expr, $legend:expr) => {{
                let anno = $anno.map_err(err)?;
                if !s.name.is_empty() {
                    anno.label(&s.name).legend($legend);
                }
            }};
        }
        match s.style {
            Style::Line => named!(ctx.draw_series(LineSeries::new(corners(points), color.stroke_width(2))), legend(color)),
            Style::Dashed => named!(ctx.draw_series(DashedLineSeries::new(points, 6, 4, color.stroke_width(2))), legend(color)),
            Style::Steps => {
                // (left, h) per bin → the outline's corners.
                let pts: Vec<(f64, f64)> = points.collect();
                let mut outline = Vec::with_capacity(2 * pts.len());
                for w in pts.windows(2) {
                    outline.push((w[0].0, w[0].1));
                    outline.push((w[1].0, w[0].1));
                }
                named!(
                    ctx.draw_series(AreaSeries::new(outline.iter().copied(), 0.0, color.mix(0.15)).border_style(color.stroke_width(2))),
                    legend(color)
                )
            }
            Style::Dots => named!(ctx.draw_series(points.map(|p| Circle::new(p, 2, color.filled()))), move |(lx, ly)| Circle::new(
                (lx + 9, ly),
                4,
                color.filled()
            )),
            Style::LineDots => {
                let pts: Vec<(f64, f64)> = points.collect();
                named!(ctx.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2))), legend(color));
                ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(err)?;
            }
            Style::Intervals => {
                let pts: Vec<(f64, f64)> = points.collect();
                // The caps' half width in x units: a tenth of a category step.
                let cap = 0.06 * (x.1 - x.0) / (chart.x_ticks.len().max(2) as f64);
                let bars = pts.chunks_exact(2).flat_map(|p| {
                    let (xx, lo, hi) = (p[0].0, p[0].1, p[1].1);
                    [
                        PathElement::new(vec![(xx, lo), (xx, hi)], color.stroke_width(2)),
                        PathElement::new(vec![(xx - cap, lo), (xx + cap, lo)], color.stroke_width(2)),
                        PathElement::new(vec![(xx - cap, hi), (xx + cap, hi)], color.stroke_width(2)),
                    ]
                });
                ctx.draw_series(bars).map_err(err)?;
            }
        }
    }
    if chart.series.iter().any(|s| !s.name.is_empty()) {
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagonal(style: Style) -> Chart {
        Chart {
            title: "A diagonal".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
            series: vec![Series { name: "y = x".into(), points: (0..=20).map(|i| (i as f64 / 20.0, i as f64 / 20.0)).collect(), style }],
            x_ticks: Vec::new(),
        }
    }

    /// Pixels of exactly `c` in the decoded PNG, as (x, y).
    fn pixels_of(png: &[u8], c: RGBColor) -> Vec<(f64, f64)> {
        let img = image::load_from_memory(png).unwrap().to_rgb8();
        img.enumerate_pixels().filter(|(_, _, p)| p.0 == [c.0, c.1, c.2]).map(|(x, y, _)| (x as f64, y as f64)).collect()
    }

    fn correlation(p: &[(f64, f64)]) -> f64 {
        let n = p.len() as f64;
        let (mx, my) = (p.iter().map(|a| a.0).sum::<f64>() / n, p.iter().map(|a| a.1).sum::<f64>() / n);
        let sxy: f64 = p.iter().map(|a| (a.0 - mx) * (a.1 - my)).sum();
        let sxx: f64 = p.iter().map(|a| (a.0 - mx).powi(2)).sum();
        let syy: f64 = p.iter().map(|a| (a.1 - my).powi(2)).sum();
        sxy / (sxx * syy).sqrt()
    }

    #[test]
    fn straight_runs_are_drawn_from_their_ends_only() {
        // A staircase: (0,0) up to (0,2), right to (3,2), up to (3,3); a turn back is kept.
        let pts = [(0.0, 0.0), (0.0, 1.0), (0.0, 2.0), (1.0, 2.0), (2.0, 2.0), (3.0, 2.0), (3.0, 3.0), (3.0, 2.5)];
        assert_eq!(corners(pts.into_iter()), vec![(0.0, 0.0), (0.0, 2.0), (3.0, 2.0), (3.0, 3.0), (3.0, 2.5)]);
        assert_eq!(corners([(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)].into_iter()), vec![(0.0, 0.0), (1.0, 1.0)]);
    }

    #[test]
    fn a_line_is_drawn_where_its_points_are() {
        let png = png(&diagonal(Style::Line), (400, 300)).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (400, 300));
        // The series' colour: a line across the plot, rising to the right (image y grows down),
        // plus the legend's short sample in the upper left.
        let line: Vec<(f64, f64)> = pixels_of(&png, PALETTE[0]).into_iter().filter(|p| p.1 > 80.0).collect();
        assert!(line.len() > 300, "{} pixels", line.len());
        let xs = line.iter().map(|p| p.0).fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        assert!(xs.1 - xs.0 > 250.0, "the line spans the plot: {xs:?}");
        assert!(correlation(&line) < -0.99, "{}", correlation(&line));
        // The title is drawn: dark text pixels in the top band.
        let dark = img.enumerate_pixels().filter(|(_, y, p)| *y < 30 && p.0.iter().all(|&c| c < 80)).count();
        assert!(dark > 50, "{dark} dark pixels in the caption band");
    }

    #[test]
    fn every_style_draws_and_the_svg_holds_the_text() {
        for style in [Style::Line, Style::Dashed, Style::Steps, Style::Dots] {
            let png = png(&diagonal(style), (400, 300)).unwrap();
            assert!(pixels_of(&png, PALETTE[0]).len() > 50, "{style:?}");
            let svg = svg(&diagonal(style), (400, 300)).unwrap();
            assert!(svg.contains("A diagonal") && svg.contains("y = x"), "{style:?}");
        }
        // Two series: two colours.
        let mut two = diagonal(Style::Line);
        two.series.push(Series { name: "flat".into(), points: vec![(0.0, 0.5), (1.0, 0.5)], style: Style::Dashed });
        let png = png(&two, (400, 300)).unwrap();
        let flat: Vec<(f64, f64)> = pixels_of(&png, PALETTE[1]).into_iter().filter(|p| p.1 > 80.0).collect();
        let ys = flat.iter().map(|p| p.1).fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        assert!(!flat.is_empty() && ys.1 - ys.0 <= 2.0, "a horizontal line: {ys:?}");
    }

    #[test]
    fn categories_label_the_x_axis_and_intervals_take_their_lines_colour() {
        let chart = Chart {
            title: "Where to mix".into(),
            x_label: "stage".into(),
            y_label: "AUROC".into(),
            x_range: Some((-0.5, 2.5)),
            y_range: Some((0.0, 1.0)),
            series: vec![
                Series { name: "noise".into(), points: vec![(0.0, 0.5), (1.0, 0.6), (2.0, 0.7)], style: Style::LineDots },
                Series { name: String::new(), points: vec![(0.0, 0.2), (0.0, 0.8), (2.0, 0.6), (2.0, 0.8)], style: Style::Intervals },
                Series { name: "none".into(), points: vec![(0.0, 0.3), (1.0, 0.3), (2.0, 0.3)], style: Style::LineDots },
            ],
            x_ticks: vec![(0.0, "input".into()), (1.0, "block1".into()), (2.0, "logits".into())],
        };
        let svg = svg(&chart, (400, 300)).unwrap();
        assert!(["input", "block1", "logits"].iter().all(|t| svg.contains(&format!("\n{t}\n"))), "{svg}");
        let png = png(&chart, (400, 300)).unwrap();
        // The interval at x = 0 spans 0.2..0.8 in the first series' colour: a tall vertical run of
        // its pixels; the second line (flat at 0.3) has the second colour.
        let first = pixels_of(&png, PALETTE[0]);
        let column_heights: std::collections::BTreeMap<i64, usize> = first.iter().fold(Default::default(), |mut m, p| {
            *m.entry(p.0 as i64).or_default() += 1;
            m
        });
        assert!(column_heights.values().any(|&h| h > 100), "{column_heights:?}");
        let second: Vec<(f64, f64)> = pixels_of(&png, PALETTE[1]).into_iter().filter(|p| p.1 > 80.0).collect();
        let ys = second.iter().map(|p| p.1).fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        assert!(!second.is_empty() && ys.1 - ys.0 <= 10.0, "the flat line and its dots: {ys:?}");
        assert!(pixels_of(&png, PALETTE[2]).is_empty(), "two colours only");
    }

    #[test]
    fn fitted_ranges_have_a_margin_and_survive_flat_data() {
        assert_eq!(fit([0.0, 10.0].into_iter()), (-0.5, 10.5));
        assert_eq!(fit([3.0, 3.0].into_iter()), (2.5, 3.5));
        assert_eq!(fit([f64::NAN].into_iter()), (0.0, 1.0));
    }
}
