//! `bench --chart FILE.svg`: each stage's throughput and each link's occupancy over one sync,
//! drawn with plotters' SVG backend (no fonts, browser or system library needed), so a user
//! sees the pipeline fill, saturate and drain.
//!
//! Readable at a glance: each legend sits beside its plot, never over the data; the colours
//! are the ten of Tableau's palette, told apart on white (no yellow); tick labels are whole
//! numbers (seconds with one decimal only for runs under five seconds) with no repeats.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use pulp_rs::stages::Timeline;

/// Distinct colours on white for up to 10 series (cycled beyond).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(64, 64, 64),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
];

/// Width of the plots; the legends get the rest of the 1200 px.
const PLOT_WIDTH: u32 = 860;

/// Writes the SVG: throughput per stage (top), occupancy per link (bottom).
pub fn write_svg(timeline: &Timeline, title: &str, path: &Path) -> anyhow::Result<()> {
    let svg = render_svg(timeline, title)?;
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

/// How many tick labels fit an axis from 0 to `max` when every label is a whole number.
fn whole_ticks(max: f64) -> usize {
    (max.floor() as usize).clamp(1, 10)
}

/// The x axis: seconds, whole when the run lasted five seconds or more.
fn seconds_label(t_max: f64) -> (usize, fn(&f64) -> String) {
    if t_max >= 5.0 {
        (whole_ticks(t_max), |v| format!("{v:.0}"))
    } else {
        (((t_max * 10.0).floor() as usize).clamp(1, 10), |v| {
            format!("{v:.1}")
        })
    }
}

/// Draws the legend of `series` (name, colour) in `area`, one line each from the top.
fn legend(
    area: &DrawingArea<SVGBackend, Shift>,
    series: &[(String, RGBColor)],
) -> anyhow::Result<()> {
    for (i, (name, colour)) in series.iter().enumerate() {
        let y = 50 + 22 * i as i32;
        area.draw(&PathElement::new(
            vec![(10, y), (34, y)],
            colour.stroke_width(3),
        ))
        .map_err(err)?;
        area.draw(&Text::new(
            name.clone(),
            (42, y - 7),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// The SVG text. Each series is one `<polyline>`; its legend entry names the stage or link.
pub fn render_svg(timeline: &Timeline, title: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let (top, bottom) = root.split_vertically(420);
        let (top_plot, top_legend) = top.split_horizontally(PLOT_WIDTH);
        let (bottom_plot, bottom_legend) = bottom.split_horizontally(PLOT_WIDTH);
        let t_max = timeline
            .samples
            .last()
            .map(|s| s.t)
            .unwrap_or(1.0)
            .max(1e-3);
        let (x_ticks, x_format) = seconds_label(t_max);

        let rates: Vec<Vec<(f64, f64)>> = (0..timeline.stages.len())
            .map(|i| timeline.stage_rates(i))
            .collect();
        let r_max = rates
            .iter()
            .flatten()
            .map(|&(_, r)| r)
            .fold(1.0f64, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(&top_plot)
            .caption(
                "throughput per stage (items out per second)",
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..t_max, 0f64..r_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("items/s")
            .x_labels(x_ticks)
            .x_label_formatter(&x_format)
            .y_labels(whole_ticks(r_max))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let mut entries = Vec::new();
        for (i, name) in timeline.stages.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    rates[i].iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
            entries.push((name.clone(), colour));
        }
        legend(&top_legend, &entries)?;

        let mut chart = ChartBuilder::on(&bottom_plot)
            .caption("link occupancy (queued / capacity)", ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..t_max, 0f64..105f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("occupancy, %")
            .x_labels(x_ticks)
            .x_label_formatter(&x_format)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let mut entries = Vec::new();
        for (i, name) in timeline.links.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    timeline
                        .link_occupancy(i)
                        .into_iter()
                        .map(|(t, o)| (t, o * 100.0)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
            entries.push((name.clone(), colour));
        }
        legend(&bottom_legend, &entries)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_whole_and_never_repeat() {
        for max in [0.3, 1.0, 3.7, 7.5, 42.0, 12345.0] {
            let n = whole_ticks(max);
            assert!((1..=10).contains(&n), "{max}: {n}");
            assert!(n as f64 <= max.max(1.0), "{max}: {n} labels would repeat");
        }
        let (n, format) = seconds_label(12.0);
        assert_eq!(format(&3.0), "3");
        assert!(n <= 10);
        let (_, format) = seconds_label(2.0);
        assert_eq!(format(&0.5), "0.5");
    }
}
