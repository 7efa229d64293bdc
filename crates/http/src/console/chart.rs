//! Line charts as inline SVG, drawn on the server from `history`'s points: no script and no
//! chart library in the page. Each line is a polyline scaled to the chart's box, the y axis
//! from 0 to the largest value (labelled with `format`), the x axis over the points' time.
//!
//! Not owned here: what the points are (`history`).

use super::history::Point;
use super::view::escape;
use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 160.0;
/// Room on the left for the y labels, and below for the x labels.
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 20.0;

/// One line of a chart: its legend and the CSS class that colours it.
pub(crate) struct Line<'a> {
    pub legend: &'a str,
    pub class: &'a str,
    pub points: &'a [Point],
}

/// An SVG of `lines`, titled `title`; "no data yet" when there are fewer than two points.
pub(crate) fn render(title: &str, lines: &[Line<'_>], format: fn(f64) -> String) -> String {
    let all = lines.iter().flat_map(|l| l.points.iter());
    let (mut t_min, mut t_max, mut y_max) = (i64::MAX, i64::MIN, 0.0f64);
    let mut count = 0;
    for &(t, y) in all {
        t_min = t_min.min(t);
        t_max = t_max.max(t);
        y_max = y_max.max(y);
        count += 1;
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}"><title>{title}</title>"#,
        title = escape(title)
    );
    if count < 2 || t_max <= t_min {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" class="empty">no data yet (a point every 10 s)</text></svg>"#,
            x = WIDTH / 2.0,
            y = HEIGHT / 2.0
        );
        return svg;
    }
    let y_top = if y_max > 0.0 { y_max } else { 1.0 };
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let x_of = |t: i64| LEFT + (t - t_min) as f64 / (t_max - t_min) as f64 * plot_w;
    let y_of = |y: f64| plot_h - y / y_top * (plot_h - 8.0);
    axes(&mut svg, format(y_top), t_max - t_min, (plot_w, plot_h));
    for line in lines {
        let mut points = String::new();
        for &(t, y) in line.points {
            let _ = write!(points, "{:.1},{:.1} ", x_of(t), y_of(y));
        }
        let _ = write!(
            svg,
            r#"<polyline class="{class}" points="{points}"><title>{legend}</title></polyline>"#,
            class = escape(line.class),
            points = points.trim_end(),
            legend = escape(line.legend),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The frame, the largest value on the y axis and the time span on the x axis.
fn axes(svg: &mut String, top: String, span_ms: i64, (plot_w, plot_h): (f64, f64)) {
    let minutes = (span_ms as f64 / 60_000.0).round() as i64;
    let ago = if minutes >= 1 {
        format!("{minutes} min ago")
    } else {
        format!("{} s ago", span_ms / 1000)
    };
    let _ = write!(
        svg,
        concat!(
            r#"<line class="axis" x1="{l}" y1="0" x2="{l}" y2="{b}"/>"#,
            r#"<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>"#,
            r#"<text x="{tx}" y="12" class="label" text-anchor="end">{top}</text>"#,
            r#"<text x="{tx}" y="{b}" class="label" text-anchor="end">0</text>"#,
            r#"<text x="{l}" y="{h}" class="label">{ago}</text>"#,
            r#"<text x="{r}" y="{h}" class="label" text-anchor="end">now</text>"#,
        ),
        l = LEFT,
        r = LEFT + plot_w,
        b = plot_h,
        h = HEIGHT - 4.0,
        tx = LEFT - 6.0,
        top = escape(&top),
        ago = ago,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: f64) -> String {
        format!("{v}")
    }

    #[test]
    fn a_line_is_scaled_into_the_box() {
        let points = [(0, 0.0), (5_000, 50.0), (10_000, 100.0)];
        let svg = render(
            "in & out",
            &[Line {
                legend: "in",
                class: "in",
                points: &points,
            }],
            plain,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("in &amp; out"), "the title is escaped");
        assert!(
            svg.contains(r#"points="70.0,140.0 355.0,74.0 640.0,8.0""#),
            "{svg}"
        );
        assert!(svg.contains(">100<"), "the top of the y axis");
    }

    #[test]
    fn too_few_points_say_so() {
        let svg = render("lag", &[], plain);
        assert!(svg.contains("no data yet"));
        let one = [(1, 1.0)];
        let svg = render(
            "lag",
            &[Line {
                legend: "g",
                class: "lag",
                points: &one,
            }],
            plain,
        );
        assert!(svg.contains("no data yet"));
    }
}
