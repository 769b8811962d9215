//! Scaling curves as a standalone SVG: wall time against tasks (log–log), and microseconds
//! per task against tasks (log x), one series per workload family.
//!
//! Hand-written SVG rather than `plotters`: plotters lays out text through a font backend
//! (`ttf`: font-kit and the fontconfig C library), a dependency the project avoids.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One measured point: workload family (e.g. `tree-reduction`), tasks, median wall in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub family: String,
    pub tasks: usize,
    pub wall_ms: f64,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];
const PANEL_W: f64 = 520.0;
const PANEL_H: f64 = 340.0;
const MARGIN: f64 = 60.0;

fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (a..=b).map(|e| 10f64.powi(e)).collect()
}

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()).max(1e-9)
        } else {
            (v - self.lo) / (self.hi - self.lo).max(1e-9)
        }
    }
}

fn label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.2}")
    }
}

#[allow(clippy::too_many_arguments)]
fn panel(
    s: &mut String,
    x0: f64,
    title: &str,
    y_desc: &str,
    series: &BTreeMap<&str, Vec<(f64, f64)>>,
    xa: &Axis,
    ya: &Axis,
) {
    let (left, top) = (x0 + MARGIN, 40.0);
    let (w, h) = (PANEL_W - MARGIN - 20.0, PANEL_H - 90.0);
    let px = |v: f64| left + xa.frac(v) * w;
    let py = |v: f64| top + h - ya.frac(v) * h;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="14" font-weight="bold" text-anchor="middle">{title}</text>"#,
        left + w / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##
    );
    for t in log_ticks(xa.lo, xa.hi)
        .into_iter()
        .filter(|t| *t >= xa.lo * 0.999 && *t <= xa.hi * 1.001)
    {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            top + h,
            top + h + 16.0,
            label(t)
        );
    }
    let yt: Vec<f64> = if ya.log {
        log_ticks(ya.lo, ya.hi)
            .into_iter()
            .filter(|t| *t >= ya.lo * 0.999 && *t <= ya.hi * 1.001)
            .collect()
    } else {
        (0..=5)
            .map(|k| ya.lo + (ya.hi - ya.lo) * k as f64 / 5.0)
            .collect()
    };
    for t in yt {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left + w,
            left - 6.0,
            y + 4.0,
            label((t * 100.0).round() / 100.0)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">tasks</text>"#,
        left + w / 2.0,
        top + h + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 {} {})">{y_desc}</text>"#,
        x0 + 16.0,
        top + h / 2.0,
        x0 + 16.0,
        top + h / 2.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{name}: {x} tasks, {y:.3}</title></circle>"#,
                px(x),
                py(y)
            );
        }
        let ly = top + 14.0 + 16.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="4" fill="{c}"/><text x="{}" y="{}" font-size="11">{name}</text>"#,
            left + 10.0,
            ly - 4.0,
            left + 28.0,
            ly
        );
    }
}

/// The two panels as an SVG document.
pub fn scaling_svg(points: &[Point], title: &str) -> String {
    let mut wall: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut per: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        if p.tasks == 0 || p.wall_ms <= 0.0 {
            continue;
        }
        wall.entry(p.family.as_str())
            .or_default()
            .push((p.tasks as f64, p.wall_ms));
        per.entry(p.family.as_str())
            .or_default()
            .push((p.tasks as f64, p.wall_ms * 1e3 / p.tasks as f64));
    }
    for v in wall.values_mut().chain(per.values_mut()) {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let xs = || {
        points
            .iter()
            .filter(|p| p.tasks > 0)
            .map(|p| p.tasks as f64)
    };
    let (xlo, xhi) = (xs().fold(f64::MAX, f64::min), xs().fold(0.0, f64::max));
    let ws = || wall.values().flatten().map(|p| p.1);
    let us = || per.values().flatten().map(|p| p.1);
    let xa = Axis {
        lo: xlo.min(xhi),
        hi: xhi.max(xlo * 10.0),
        log: true,
    };
    let wa = Axis {
        lo: ws().fold(f64::MAX, f64::min).min(1e9) * 0.8,
        hi: ws().fold(0.0, f64::max) * 1.25,
        log: true,
    };
    let ua = Axis {
        lo: 0.0,
        hi: us().fold(0.0, f64::max).max(1e-3) * 1.15,
        log: false,
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="Helvetica,Arial,sans-serif">"#,
        2.0 * PANEL_W,
        PANEL_H
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r##"<text x="8" y="{}" font-size="11" fill="#555">{}</text>"##,
        PANEL_H - 8.0,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    panel(
        &mut s,
        0.0,
        "median wall time (ms), log–log",
        "ms",
        &wall,
        &xa,
        &wa,
    );
    panel(
        &mut s,
        PANEL_W,
        "per-task cost (µs/task)",
        "µs per task",
        &per,
        &xa,
        &ua,
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_series_per_family_with_a_point_per_measure() {
        let pts: Vec<Point> = [
            ("tree", 1023, 1.0),
            ("tree", 131071, 120.0),
            ("chain", 1000, 0.6),
            ("chain", 10000, 8.0),
        ]
        .iter()
        .map(|(f, t, w)| Point {
            family: f.to_string(),
            tasks: *t,
            wall_ms: *w,
        })
        .collect();
        let svg = scaling_svg(&pts, "test");
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 4, "2 families × 2 panels");
        assert_eq!(svg.matches("<circle").count(), 8);
        assert!(svg.contains("tree: 131071 tasks"));
    }
}
