//! `rukong run FILE --timeline out.svg|out.html`: a Gantt chart of a traced run. It has one
//! row per executor slot and one bar per task, coloured by function. Cold starts are marked
//! red at the start of their bar, data transfers through the object store (puts and gets of
//! large outputs) are dark strips along the bottom of their slot's row, and the critical path
//! is outlined in black.
//!
//! It stays usable at 100,000 tasks. A row with more bars than pixels is drawn aggregated:
//! each pixel column gets the colour of the function that kept the slot busiest there,
//! shaded by how busy the slot was. The critical path is always drawn bar by bar.

use rukong_engine::TracedTask;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#98df8a", "#c5b0d5",
];
const WIDTH: f64 = 1200.0;
const LABEL: f64 = 170.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The tasks on the critical path: from the task that ended last, back through the
/// dependency that ended last, to a task with no traced dependency.
/// Transfers are not on it: a task's bar starts after its inputs arrived.
pub fn critical_path(trace: &[TracedTask]) -> Vec<usize> {
    let by_id: HashMap<&str, usize> = trace
        .iter()
        .enumerate()
        .filter(|(_, t)| t.transfer.is_none())
        .map(|(i, t)| (t.task.as_str(), i))
        .collect();
    let end = |i: usize| trace[i].start_us + trace[i].dur_us;
    let Some(mut cur) = (0..trace.len())
        .filter(|&i| trace[i].transfer.is_none())
        .max_by_key(|&i| end(i))
    else {
        return Vec::new();
    };
    let mut path = vec![cur];
    while let Some(prev) = trace[cur]
        .deps
        .iter()
        .filter_map(|d| by_id.get(d.as_str()).copied())
        .max_by_key(|&i| end(i))
    {
        path.push(prev);
        cur = prev;
        if path.len() > trace.len() {
            break;
        }
    }
    path.reverse();
    path
}

/// The chart as a standalone SVG document.
pub fn render_svg(trace: &[TracedTask], title: &str) -> String {
    let runs = trace.iter().filter(|t| t.transfer.is_none()).count();
    let mut slots: Vec<&str> = trace.iter().map(|t| t.slot.as_str()).collect();
    slots.sort_unstable();
    slots.dedup();
    let row_of: HashMap<&str, usize> = slots.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut funcs: Vec<&str> = trace.iter().map(|t| t.func.as_str()).collect();
    funcs.sort_unstable();
    funcs.dedup();
    let color: HashMap<&str, &str> = funcs
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, PALETTE[i % PALETTE.len()]))
        .collect();
    let t0 = trace.iter().map(|t| t.start_us).min().unwrap_or(0);
    let t1 = trace
        .iter()
        .map(|t| t.start_us + t.dur_us)
        .max()
        .unwrap_or(t0 + 1)
        .max(t0 + 1);
    let span_us = (t1 - t0) as f64;
    let x = |us: u64| LABEL + (us.saturating_sub(t0)) as f64 / span_us * WIDTH;
    let row_h = if slots.len() > 40 { 10.0 } else { 20.0 };
    let top = 50.0;
    let legend_y = top + row_h * slots.len() as f64 + 40.0;
    let height = legend_y + (20.0 * (funcs.len().div_ceil(6) as f64)).max(45.0) + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="Helvetica,Arial,sans-serif" font-size="11">"#,
        LABEL + WIDTH + 20.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{} — {} tasks on {} slots, {:.1} ms</text>"#,
        esc(title),
        runs,
        slots.len(),
        span_us / 1e3
    );
    // Time axis.
    let step = nice_step(span_us / 1e3 / 8.0);
    let mut tick = 0.0;
    while tick <= span_us / 1e3 + 1e-9 {
        let xx = LABEL + tick * 1e3 / span_us * WIDTH;
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{}" x2="{xx:.1}" y2="{}" stroke="#ddd"/>"##,
            top - 5.0,
            top + row_h * slots.len() as f64
        );
        let _ = writeln!(
            s,
            r##"<text x="{xx:.1}" y="{}" text-anchor="middle" fill="#555">{} ms</text>"##,
            top - 8.0,
            fmt_ms(tick)
        );
        tick += step;
    }
    // Rows.
    let mut per_row: Vec<Vec<usize>> = vec![Vec::new(); slots.len()];
    let mut moves_per_row: Vec<Vec<usize>> = vec![Vec::new(); slots.len()];
    for (i, t) in trace.iter().enumerate() {
        let row = row_of[t.slot.as_str()];
        if t.transfer.is_some() {
            moves_per_row[row].push(i);
        } else {
            per_row[row].push(i);
        }
    }
    for (r, idxs) in per_row.iter().enumerate() {
        let y = top + r as f64 * row_h;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
            LABEL - 6.0,
            y + row_h * 0.7,
            esc(slots[r])
        );
        if idxs.len() as f64 <= WIDTH / 2.0 {
            for &i in idxs {
                let t = &trace[i];
                let (x0, x1) = (x(t.start_us), x(t.start_us + t.dur_us));
                let _ = writeln!(
                    s,
                    r#"<rect x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{}" stroke="white" stroke-width="0.4"><title>{} ({}) {:.3} ms</title></rect>"#,
                    y + 1.0,
                    (x1 - x0).max(0.8),
                    row_h - 2.0,
                    color[t.func.as_str()],
                    esc(t.task.as_str()),
                    esc(&t.func),
                    t.dur_us as f64 / 1e3
                );
            }
        } else {
            // Aggregate: per pixel column, busy time and task starts per function. Tiny
            // tasks take no measurable time, so activity counts starts as well.
            let cols = WIDTH as usize;
            let mut busy: Vec<BTreeMap<&str, (f64, u32)>> = vec![BTreeMap::new(); cols];
            let px_us = span_us / WIDTH;
            for &i in idxs {
                let t = &trace[i];
                let (a, b) = (
                    (t.start_us - t0) as f64,
                    (t.start_us - t0 + t.dur_us) as f64,
                );
                let (ca, cb) = (
                    ((a / px_us) as usize).min(cols - 1),
                    ((b / px_us) as usize).min(cols - 1),
                );
                busy[ca].entry(t.func.as_str()).or_default().1 += 1;
                for (c, col) in busy.iter_mut().enumerate().take(cb + 1).skip(ca) {
                    let lo = a.max(c as f64 * px_us);
                    let hi = b.min((c + 1) as f64 * px_us);
                    if hi > lo {
                        col.entry(t.func.as_str()).or_default().0 += hi - lo;
                    }
                }
            }
            let max_starts = busy
                .iter()
                .map(|c| c.values().map(|v| v.1).sum::<u32>())
                .max()
                .unwrap_or(1)
                .max(1);
            for (c, col) in busy.iter().enumerate() {
                if col.is_empty() {
                    continue;
                }
                let time: f64 = col.values().map(|v| v.0).sum();
                let starts: u32 = col.values().map(|v| v.1).sum();
                let weight = |v: &(f64, u32)| v.0 / px_us + f64::from(v.1) / f64::from(max_starts);
                let Some((f, _)) = col
                    .iter()
                    .max_by(|a, b| weight(a.1).total_cmp(&weight(b.1)))
                else {
                    continue;
                };
                let opacity = (time / px_us)
                    .max(f64::from(starts) / f64::from(max_starts))
                    .clamp(0.15, 1.0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="1" height="{:.1}" fill="{}" fill-opacity="{opacity:.2}"/>"#,
                    LABEL + c as f64,
                    y + 1.0,
                    row_h - 2.0,
                    color[f]
                );
            }
        }
        // Cold starts: a red mark over the init part of the bar.
        for &i in idxs {
            let t = &trace[i];
            if t.init_us > 0 {
                let x0 = x(t.start_us);
                let w = (x(t.start_us + t.init_us) - x0).max(2.0);
                let _ = writeln!(
                    s,
                    r##"<rect x="{x0:.2}" y="{:.1}" width="{w:.2}" height="{:.1}" fill="#d62728"><title>cold start of {} ({:.3} ms)</title></rect>"##,
                    y + 1.0,
                    row_h - 2.0,
                    esc(&t.func),
                    t.init_us as f64 / 1e3
                );
            }
        }
    }
    // Data transfers: a dark strip along the bottom of the row, one per transfer (or one
    // per pixel column when there are more transfers than pixels).
    for (r, idxs) in moves_per_row.iter().enumerate() {
        let y = top + r as f64 * row_h + row_h * 0.65;
        let h = row_h * 0.35 - 1.0;
        if idxs.len() as f64 <= WIDTH / 2.0 {
            for &i in idxs {
                let t = &trace[i];
                let Some(m) = t.transfer else { continue };
                let (x0, x1) = (x(t.start_us), x(t.start_us + t.dur_us));
                let secs = t.dur_us.max(1) as f64 / 1e6;
                let _ = writeln!(
                    s,
                    r##"<rect x="{x0:.2}" y="{y:.1}" width="{:.2}" height="{h:.1}" fill="{}"><title>{} of {}'s output: {} in {:.3} ms ({:.2} GB/s)</title></rect>"##,
                    (x1 - x0).max(1.5),
                    if m.put { "#222" } else { "#666" },
                    if m.put { "put" } else { "get" },
                    esc(t.task.as_str()),
                    fmt_bytes(m.bytes),
                    t.dur_us as f64 / 1e3,
                    m.bytes as f64 / secs / 1e9
                );
            }
        } else {
            let cols = WIDTH as usize;
            let mut hit = vec![false; cols];
            for &i in idxs {
                let t = &trace[i];
                let a = ((x(t.start_us) - LABEL) as usize).min(cols - 1);
                let b = ((x(t.start_us + t.dur_us) - LABEL) as usize).min(cols - 1);
                hit[a..=b].iter_mut().for_each(|h| *h = true);
            }
            for (c, _) in hit.iter().enumerate().filter(|(_, h)| **h) {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{y:.1}" width="1" height="{h:.1}" fill="#222"/>"##,
                    LABEL + c as f64
                );
            }
        }
    }
    // The critical path, outlined bar by bar.
    for i in critical_path(trace) {
        let t = &trace[i];
        let y = top + row_of[t.slot.as_str()] as f64 * row_h;
        let (x0, x1) = (x(t.start_us), x(t.start_us + t.dur_us));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="none" stroke="black" stroke-width="1.5"><title>critical path: {}</title></rect>"#,
            y + 0.5,
            (x1 - x0).max(1.5),
            row_h - 1.0,
            esc(t.task.as_str())
        );
    }
    // Legend.
    for (k, f) in funcs.iter().enumerate() {
        let (lx, ly) = (
            LABEL + (k % 6) as f64 * 190.0,
            legend_y + (k / 6) as f64 * 20.0,
        );
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            ly - 10.0,
            color[f],
            lx + 16.0,
            ly,
            esc(f)
        );
    }
    let lx = 10.0;
    let _ = writeln!(
        s,
        r##"<rect x="{lx}" y="{}" width="12" height="12" fill="#d62728"/><text x="{}" y="{legend_y}">cold start</text><rect x="{lx}" y="{}" width="12" height="12" fill="none" stroke="black" stroke-width="1.5"/><text x="{}" y="{}">critical path</text><rect x="{lx}" y="{}" width="12" height="5" fill="#222"/><text x="{}" y="{}">data put / get</text>"##,
        legend_y - 10.0,
        lx + 16.0,
        legend_y + 10.0,
        lx + 16.0,
        legend_y + 20.0,
        legend_y + 33.0,
        lx + 16.0,
        legend_y + 40.0
    );
    s.push_str("</svg>\n");
    s
}

/// The chart inside a small HTML page.
pub fn render_html(trace: &[TracedTask], title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"margin:16px\">\n{}</body></html>\n",
        esc(title),
        render_svg(trace, title)
    )
}

fn nice_step(raw_ms: f64) -> f64 {
    let raw = raw_ms.max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 || ms == 0.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, func: &str, slot: &str, start: u64, dur: u64, deps: &[&str]) -> TracedTask {
        TracedTask {
            task: id.into(),
            func: func.into(),
            slot: slot.into(),
            start_us: start,
            dur_us: dur,
            init_us: 0,
            deps: deps.iter().map(|d| (*d).into()).collect(),
            transfer: None,
        }
    }

    #[test]
    fn transfers_are_marked_and_stay_off_the_critical_path() {
        let mut put = t("a", "blob", "s0", 10, 30, &[]);
        put.transfer = Some(rukong_engine::Transfer {
            put: true,
            bytes: 8 << 20,
        });
        let mut get = t("a", "blob", "s1", 45, 5, &[]);
        get.transfer = Some(rukong_engine::Transfer {
            put: false,
            bytes: 8 << 20,
        });
        let trace = vec![
            t("a", "blob", "s0", 0, 10, &[]),
            put,
            get,
            t("b", "sha256", "s1", 50, 20, &["a"]),
        ];
        let path: Vec<&str> = critical_path(&trace)
            .iter()
            .map(|&i| trace[i].task.as_str())
            .collect();
        assert_eq!(path, ["a", "b"]);
        let svg = render_svg(&trace, "moves");
        assert!(svg.contains("put of a's output: 8.00 MiB"), "{svg}");
        assert!(svg.contains("get of a's output: 8.00 MiB"));
        assert!(svg.contains("2 tasks on 2 slots"));
    }

    #[test]
    fn the_critical_path_follows_the_latest_dependency() {
        let trace = vec![
            t("a", "const", "s0", 0, 10, &[]),
            t("b", "spin", "s0", 10, 100, &["a"]),
            t("c", "spin", "s1", 10, 20, &["a"]),
            t("d", "add", "s0", 110, 5, &["b", "c"]),
        ];
        let path: Vec<&str> = critical_path(&trace)
            .iter()
            .map(|&i| trace[i].task.as_str())
            .collect();
        assert_eq!(path, ["a", "b", "d"]);
    }

    #[test]
    fn large_rows_are_aggregated_and_small_ones_are_not() {
        let small: Vec<TracedTask> = (0..10)
            .map(|i| t(&format!("x{i}"), "add", "s0", i * 10, 10, &[]))
            .collect();
        let svg = render_svg(&small, "small");
        assert_eq!(svg.matches("<title>x").count(), 10, "one bar per task");
        let big: Vec<TracedTask> = (0..100_000)
            .map(|i| {
                t(
                    &format!("y{i}"),
                    if i % 2 == 0 { "add" } else { "const" },
                    if i % 2 == 0 { "s0" } else { "s1" },
                    i,
                    1,
                    &[],
                )
            })
            .collect();
        let svg = render_svg(&big, "big");
        assert!(svg.len() < 2_000_000, "aggregated: {} bytes", svg.len());
        assert!(svg.contains("fill-opacity"));
        assert!(render_html(&small, "t").starts_with("<!DOCTYPE html>"));
    }
}
