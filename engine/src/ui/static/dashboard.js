// The rukong dashboard: polls the engine's JSON views about once a second and redraws.
// Plain JavaScript, no build step. Charts: Chart.js (window.Chart); DAG layout: dagre
// (window.dagre). Every string from the engine reaches the page through textContent,
// never as HTML. Authorization: the HttpOnly cookie that /ui?token=… set travels with
// every same-origin fetch (see engine/src/ui/auth.rs).
"use strict";

(() => {
  const POLL_MS = 1000;
  const GANTT_MAX = 3000; // the most recent task spans the Gantt draws
  const SAMPLES_MAX = 3600; // points of the progress-over-time line
  const SPANS_KEEP = 100000; // spans kept in the page (the oldest go first)
  const SPANS_PAGE = 20000; // spans fetched per refresh
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6"];

  const $ = (id) => document.getElementById(id);
  const view = {
    job: new URLSearchParams(location.search).get("job"),
    status: null, dag: null, dagFor: null, dagDrawn: false, dagNodes: new Map(),
    spans: [], spanNext: 0, spansDropped: 0, t0: Infinity, ran: new Set(), samples: [],
    colors: new Map(), charts: {}, updates: 0, timer: null,
  };

  // ---- helpers ------------------------------------------------------------------------

  async function getJSON(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store",
      headers: { Accept: "application/json" } });
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    if (r.status === 401) {
      throw new Error("unauthorized: open /ui?token=<token> again (" + (body && body.error || "") + ")");
    }
    if (!r.ok) {
      const e = new Error(path + ": HTTP " + r.status + (body && body.error ? ": " + body.error : ""));
      e.status = r.status;
      throw e;
    }
    return body;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function fmtUs(us) {
    if (!us) return "0";
    if (us < 1000) return us.toFixed(0) + " µs";
    if (us < 1e6) return (us / 1000).toFixed(1) + " ms";
    return (us / 1e6).toFixed(2) + " s";
  }

  function fmtMs(ms) { return fmtUs((ms || 0) * 1000); }

  function fmtBytes(b) {
    if (!b) return "0";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return b.toFixed(i ? 1 : 0) + " " + u[i];
  }

  function colorOf(fn) {
    if (!view.colors.has(fn)) view.colors.set(fn, PALETTE[view.colors.size % PALETTE.length]);
    return view.colors.get(fn);
  }

  function badge(node, state) {
    node.textContent = state;
    node.className = "badge " + state;
  }

  function progressBar(done, total) {
    const bar = el("div", null, "bar");
    const fill = el("span");
    fill.style.width = (total ? (100 * done / total) : 0).toFixed(1) + "%";
    bar.appendChild(fill);
    bar.title = done + " / " + total;
    return bar;
  }

  // ---- engine health and the job list ------------------------------------------------

  async function refreshHealth() {
    const h = $("health");
    try {
      const r = await fetch("/healthz", { cache: "no-store" });
      const b = await r.json();
      if (r.ok) {
        h.textContent = "engine ok · " + b.executors + " executors · " + b.slots + " slots";
        h.className = "badge ok";
      } else {
        h.textContent = "engine: " + (b.error || r.status);
        h.className = "badge down";
      }
    } catch (e) {
      h.textContent = "engine unreachable";
      h.className = "badge down";
      throw e;
    }
  }

  async function refreshJobs() {
    const { jobs } = await getJSON("/ui/api/jobs");
    $("jobs-count").textContent = jobs.length ? "(" + jobs.length + ")" : "";
    $("jobs-empty").hidden = jobs.length > 0;
    if (!view.job && jobs.length) select(jobs[0].job);
    const body = $("jobs").tBodies[0];
    const rows = jobs.map((j) => {
      const tr = el("tr");
      tr.dataset.job = j.job;
      if (j.job === view.job) tr.className = "selected";
      const id = el("td");
      id.appendChild(el("span", j.job, "mono"));
      id.appendChild(el("span", j.name, "sub"));
      tr.appendChild(id);
      const st = el("td");
      const b = el("span");
      badge(b, j.state);
      st.appendChild(b);
      tr.appendChild(st);
      const pr = el("td");
      pr.appendChild(progressBar(j.done, j.total));
      pr.appendChild(el("span", j.done + " / " + j.total, "muted"));
      tr.appendChild(pr);
      tr.appendChild(el("td", fmtMs(j.elapsed_ms)));
      tr.addEventListener("click", () => { select(j.job); tick(); });
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function select(job) {
    if (job === view.job && view.status) return;
    view.job = job;
    view.status = null; view.dag = null; view.dagFor = null; view.dagDrawn = false; view.dagNodes = new Map();
    view.spans = []; view.spanNext = 0; view.spansDropped = 0; view.t0 = Infinity;
    view.ran = new Set(); view.samples = [];
    history.replaceState(null, "", "/ui?job=" + encodeURIComponent(job));
    for (const tr of $("jobs").tBodies[0].rows) {
      tr.className = tr.dataset.job === job ? "selected" : "";
    }
    $("dag").replaceChildren();
  }

  // ---- one job ------------------------------------------------------------------------

  async function refreshJob() {
    const job = view.job;
    if (!job) return;
    let st;
    try {
      st = await getJSON("/ui/api/jobs/" + encodeURIComponent(job));
    } catch (e) {
      if (e.status !== 404) throw e;
      // Freed after the retention period, or cancelled: pick another on the next refresh.
      if (job === view.job) {
        view.job = null;
        view.status = null;
        drawJob();
        $("job-none").textContent = "Job " + job + " is gone (cancelled, or freed after the retention period).";
      }
      return;
    }
    if (job !== view.job) return; // another job was selected meanwhile
    view.status = st;
    if (view.dagFor !== job) {
      view.dag = await getJSON("/ui/api/jobs/" + encodeURIComponent(job) + "/dag");
      view.dagFor = job;
      view.dagDrawn = false;
    }
    // The spans that arrived since the last refresh (one page per refresh).
    const r = await getJSON("/ui/api/jobs/" + encodeURIComponent(job) + "/spans?from=" + view.spanNext +
      "&limit=" + SPANS_PAGE);
    if (job !== view.job) return;
    for (const s of r.spans) {
      view.spans.push(s);
      view.t0 = Math.min(view.t0, s.start_us);
      if (s.put === undefined) view.ran.add(s.task);
    }
    view.spanNext = r.next;
    if (view.spans.length > SPANS_KEEP) {
      const drop = view.spans.length - SPANS_KEEP;
      view.spansDropped += view.spans.slice(0, drop).filter((s) => s.put === undefined).length;
      view.spans.splice(0, drop);
    }
    const last = view.samples[view.samples.length - 1];
    if (!last || last.x !== st.elapsed_ms / 1000) {
      view.samples.push({ x: st.elapsed_ms / 1000, y: st.done });
      if (view.samples.length > SAMPLES_MAX) view.samples.shift();
    }
    drawJob();
  }

  function drawJob() {
    const st = view.status;
    const sec = $("job");
    $("job-none").hidden = !!st;
    $("job-body").hidden = !st;
    if (!st) return;
    const s = st.stats || {};
    const ran = Math.min(s.tasks || 0, st.total);
    const skipped = Math.min(s.skipped || 0, st.total - ran);
    const rest = Math.max(0, st.total - ran - skipped);
    sec.dataset.job = st.job;
    sec.dataset.state = st.state;
    sec.dataset.done = st.done;
    sec.dataset.total = st.total;
    $("job-id").textContent = st.job;
    $("job-name").textContent = st.name;
    badge($("job-state"), st.state);
    const bar = $("stackbar");
    bar.className = "stackbar" + (st.state === "failed" ? " failed" : "");
    const pct = (n) => (st.total ? (100 * n / st.total) : 0).toFixed(2) + "%";
    bar.children[0].style.width = pct(ran);
    bar.children[1].style.width = pct(skipped);
    bar.children[2].style.width = pct(rest);
    $("c-ran").textContent = ran;
    $("c-skipped").textContent = skipped;
    $("c-rest").textContent = rest;
    $("c-total").textContent = st.total;
    $("c-elapsed").textContent = fmtMs(st.elapsed_ms);
    $("c-rate").textContent = st.elapsed_ms > 0
      ? (st.done / (st.elapsed_ms / 1000)).toFixed(1) + " tasks/s" : "–";
    const err = $("job-error");
    err.hidden = !st.error;
    err.textContent = st.error ? "task " + st.error.task + " failed: " + st.error.message : "";
    drawWarm(s);
    drawProgressChart();
    drawGantt();
    // Laid out once the panel is visible, so that it is sized to fit.
    if (view.dag && !view.dagDrawn) {
      drawDag();
      view.dagDrawn = true;
    }
    colorDag();
  }

  function drawWarm(s) {
    const rows = [
      ["cold starts (init on the critical path)", s.cold_starts || 0],
      ["time tasks waited for init (C_d)", fmtUs(s.init_us)],
      ["warm hits (device slots)", s.warm_hits || 0],
      ["tasks run in a bundle", s.bundled || 0],
      ["warm-up hints issued", s.hints_issued || 0],
      ["… that warmed a state", s.hints_warmed || 0],
      ["… already warm (no-op)", s.hints_noop || 0],
      ["… used by a task", s.hints_used || 0],
      ["… wasted (dropped unused)", s.hints_wasted || 0],
      ["… cancelled", s.hints_cancelled || 0],
      ["re-plans after a branch", s.replans || 0],
      ["init time run by hints", fmtUs(s.hint_init_us)],
      ["warm time held before use (C_r)", fmtUs(s.warm_idle_us)],
    ];
    $("warm").tBodies[0].replaceChildren(...rows.map(([k, v]) => {
      const tr = el("tr");
      tr.appendChild(el("td", k));
      tr.appendChild(el("td", v));
      return tr;
    }));
    $("warm-note").hidden = (s.hints_issued || 0) > 0;
    // Cold starts by function, from the spans (traced jobs).
    const byFn = new Map();
    for (const sp of view.spans) {
      if (sp.put !== undefined || !sp.init_us) continue;
      const e = byFn.get(sp.fn) || { n: 0, us: 0 };
      e.n++; e.us += sp.init_us;
      byFn.set(sp.fn, e);
    }
    $("warm-fns").textContent = byFn.size
      ? "Cold starts in the task stream: " + [...byFn].map(([f, e]) => f + " ×" + e.n + " (" + fmtUs(e.us) + ")").join(", ")
      : "";
  }

  // Tasks done over time: from the spans' ends for a traced job (its whole history, on
  // the Gantt's clock), else from what this page sampled since it opened the job.
  function progressPoints() {
    const runs = view.spans.filter((s) => s.put === undefined);
    if (view.dag && view.dag.traced && runs.length) {
      const base = view.spansDropped;
      const ends = runs.map((s) => (s.start_us + s.dur_us - view.t0) / 1e6).sort((a, b) => a - b);
      const step = Math.max(1, Math.floor(ends.length / SAMPLES_MAX));
      const pts = base ? [] : [{ x: 0, y: 0 }];
      for (let i = step - 1; i < ends.length; i += step) pts.push({ x: ends[i], y: base + i + 1 });
      const last = base + ends.length;
      if (!pts.length || pts[pts.length - 1].y !== last) pts.push({ x: ends[ends.length - 1], y: last });
      return { pts, axis: "seconds since the first span" };
    }
    // Nothing was done when the engine first saw the job.
    return { pts: [{ x: 0, y: 0 }, ...view.samples], axis: "seconds since the engine saw the job" };
  }

  function drawProgressChart() {
    if (!window.Chart) return;
    const total = view.status ? view.status.total : 0;
    let c = view.charts.progress;
    if (!c) {
      c = view.charts.progress = new Chart($("progress-chart"), {
        type: "line",
        data: { datasets: [{ label: "tasks done", data: [], borderColor: "#2e9d5b",
          backgroundColor: "rgba(46,157,91,.15)", fill: true, pointRadius: 0, stepped: true }] },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
          plugins: { legend: { display: false } },
          scales: { x: { type: "linear", min: 0, title: { display: true, text: "seconds since the engine saw the job" } },
            y: { min: 0, title: { display: true, text: "tasks" } } } },
      });
    }
    const { pts, axis } = progressPoints();
    c.data.datasets[0].data = pts;
    c.options.scales.x.title.text = axis;
    c.options.scales.y.max = total || undefined;
    c.update("none");
  }

  function drawGantt() {
    const note = $("gantt-note");
    const box = $("gantt-box");
    const traced = view.dag ? view.dag.traced : true;
    note.hidden = traced;
    box.hidden = !traced;
    const count = $("spans-count");
    const runs = view.spans.filter((s) => s.put === undefined);
    const seen = view.spansDropped + runs.length;
    count.dataset.spans = seen;
    if (!traced || !window.Chart) { count.textContent = ""; return; }
    const shown = runs.length > GANTT_MAX ? runs.slice(runs.length - GANTT_MAX) : runs;
    count.textContent = seen
      ? "(" + seen + " task spans" + (shown.length < seen ? ", the last " + shown.length + " drawn" : "") + ")"
      : "(no task has finished yet)";
    const t0 = view.t0;
    const slots = [...new Set(view.spans.map((s) => s.slot))].sort();
    const sec = (us) => (us - t0) / 1e6;
    const byFn = new Map();
    const init = [];
    for (const s of shown) {
      if (!byFn.has(s.fn)) byFn.set(s.fn, []);
      byFn.get(s.fn).push({ x: [sec(s.start_us), sec(s.start_us + s.dur_us)], y: s.slot, task: s.task, us: s.dur_us });
      if (s.init_us > 0) {
        init.push({ x: [sec(s.start_us), sec(s.start_us + s.init_us)], y: s.slot, task: s.task, us: s.init_us });
      }
    }
    const transfers = view.spans.filter((s) => s.put !== undefined).slice(-GANTT_MAX).map((s) => ({
      x: [sec(s.start_us), sec(s.start_us + s.dur_us)], y: s.slot, task: s.task, us: s.dur_us,
      what: (s.put ? "put " : "get ") + fmtBytes(s.bytes),
    }));
    const bar = { grouped: false, borderSkipped: false, categoryPercentage: 1 };
    const datasets = [...byFn].map(([fn, data]) => ({ ...bar, label: fn, data,
      backgroundColor: colorOf(fn), barPercentage: 0.8, order: 2 }));
    if (init.length) {
      datasets.push({ ...bar, label: "cold start (init)", data: init, backgroundColor: "#d62728",
        barPercentage: 0.8, order: 1 });
    }
    if (transfers.length) {
      datasets.push({ ...bar, label: "object transfer", data: transfers, backgroundColor: "#333",
        barPercentage: 0.25, order: 0 });
    }
    box.style.height = Math.max(160, 26 * slots.length + 90) + "px";
    let c = view.charts.gantt;
    if (!c) {
      c = view.charts.gantt = new Chart($("gantt"), {
        type: "bar",
        data: { datasets: [] },
        options: { indexAxis: "y", animation: false, responsive: true, maintainAspectRatio: false,
          parsing: { xAxisKey: "x", yAxisKey: "y" },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } },
            tooltip: { callbacks: { label: (ctx) => {
              const r = ctx.raw;
              return r.task + " (" + ctx.dataset.label + (r.what ? ", " + r.what : "") + "): " + fmtUs(r.us);
            } } } },
          scales: { x: { type: "linear", min: 0, title: { display: true, text: "seconds since the first span" } },
            y: { type: "category", title: { display: true, text: "executor slot" } } } },
      });
    }
    c.options.scales.y.labels = slots;
    c.data.datasets = datasets;
    c.update("none");
  }

  // ---- the DAG picture ----------------------------------------------------------------

  function drawDag() {
    const d = view.dag;
    const host = $("dag");
    const note = $("dag-note");
    host.replaceChildren();
    view.dagNodes = new Map();
    $("dag-summary").textContent = d.tasks + " tasks, " + d.edges + " edges, " + d.sources + " sources, " +
      d.sinks + " sinks · " + d.functions.map((f) => f.fn + " ×" + f.count).join(", ");
    if (!d.graph) {
      note.hidden = false;
      note.textContent = "The DAG has " + d.tasks + " tasks: pictures are drawn up to " + d.picture_limit +
        " tasks. `rukong graph FILE --format svg` draws any DAG.";
      host.hidden = true;
      return;
    }
    host.hidden = false;
    if (!window.dagre) {
      note.hidden = false;
      note.textContent = "The DAG layout library did not load.";
      return;
    }
    note.hidden = true;
    // Both orientations; keep the one that needs less shrinking to fit the box.
    const boxW = Math.max(200, host.clientWidth - 4);
    const boxH = 520;
    const layout = (rankdir) => {
      const g = new dagre.graphlib.Graph();
      g.setGraph({ rankdir, nodesep: 10, ranksep: 28, marginx: 8, marginy: 8 });
      g.setDefaultEdgeLabel(() => ({}));
      d.graph.nodes.forEach((n, i) => {
        const label = n.id.length > 22 ? n.id.slice(0, 21) + "…" : n.id;
        g.setNode(String(i), { label, width: Math.max(36, 12 + 6.6 * label.length), height: 22 });
      });
      for (const [a, b] of d.graph.edges) g.setEdge(String(a), String(b));
      dagre.layout(g);
      const gg = g.graph();
      return { g, w: Math.ceil(gg.width), h: Math.ceil(gg.height),
        scale: Math.min(1, boxW / gg.width, boxH / gg.height) };
    };
    const lr = layout("LR");
    const tb = layout("TB");
    const best = tb.scale > lr.scale ? tb : lr;
    const g = best.g;
    // Shrink to fit (wide fan-outs shrink a lot: hover a node for its name), but never
    // below a quarter (then the box scrolls).
    const scale = Math.max(0.25, best.scale);
    const root = svg("svg", { width: Math.ceil(best.w * scale), height: Math.ceil(best.h * scale),
      viewBox: "0 0 " + best.w + " " + best.h });
    root.dataset.nodes = d.graph.nodes.length;
    for (const e of g.edges()) {
      const pts = g.edge(e).points || [];
      if (!pts.length) continue;
      const dpath = pts.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1)).join(" ");
      root.appendChild(svg("path", { d: dpath, class: "edge", "marker-end": "url(#arrow)" }));
    }
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
    marker.appendChild(svg("path", { d: "M0 0 L10 5 L0 10 z", fill: "#9aa4ae" }));
    defs.appendChild(marker);
    root.insertBefore(defs, root.firstChild);
    d.graph.nodes.forEach((n, i) => {
      const p = g.node(String(i));
      const grp = svg("g", { class: "node pending" + (n.output ? " output" : "") + (n.gpu ? " gpu" : ""),
        transform: "translate(" + (p.x - p.width / 2).toFixed(1) + "," + (p.y - p.height / 2).toFixed(1) + ")" });
      const title = svg("title");
      title.textContent = n.id + " = " + n.fn + (n.gpu ? " (GPU)" : "") + (n.output ? " (output)" : "");
      grp.appendChild(title);
      const rect = svg("rect", { width: p.width, height: p.height });
      if (!d.traced) rect.style.fill = colorOf(n.fn) + "55";
      grp.appendChild(rect);
      const t = svg("text", { x: p.width / 2, y: p.height / 2 });
      t.textContent = p.label;
      grp.appendChild(t);
      root.appendChild(grp);
      view.dagNodes.set(n.id, grp);
    });
    host.appendChild(root);
    note.hidden = false;
    note.textContent = d.traced
      ? "Green: ran · yellow: skipped · grey: not run yet. Bold border: an output; dashed: needs a GPU. Hover a task for its function."
      : "Coloured by function (the job is not traced, so tasks are not marked as they run). Hover a task for its function.";
  }

  // A traced job's tasks turn green as their spans arrive. Once it has succeeded, a task
  // without a span was skipped by a conditional branch.
  function colorDag() {
    const d = view.dag;
    if (!d || !d.traced) return;
    const succeeded = view.status && view.status.state === "succeeded";
    for (const [id, grp] of view.dagNodes) {
      const now = view.ran.has(id) ? "ran" : succeeded ? "skipped" : "pending";
      grp.setAttribute("class", grp.getAttribute("class").replace(/\b(pending|ran|skipped)\b/, now));
    }
  }

  // ---- executors and GPUs -------------------------------------------------------------

  async function refreshExecutors() {
    const { executors } = await getJSON("/ui/api/executors");
    $("exec-count").textContent = "(" + executors.length + ", " +
      executors.reduce((n, e) => n + e.slots, 0) + " slots)";
    $("executors").tBodies[0].replaceChildren(...executors.map((e) => {
      const tr = el("tr");
      const id = el("td");
      id.appendChild(el("span", e.id, "mono"));
      id.appendChild(el("span", e.host + " · " + e.version, "sub"));
      tr.appendChild(id);
      tr.appendChild(el("td", e.class));
      tr.appendChild(el("td", e.slots));
      const dev = el("td", (e.devices || []).join(", "));
      const f = el("span", (e.functions || []).length + " functions", "sub");
      f.title = (e.functions || []).join(", ");
      dev.appendChild(f);
      tr.appendChild(dev);
      return tr;
    }));
    const gpus = [];
    for (const e of executors) {
      for (const d of e.device_stats || []) gpus.push([e, d]);
    }
    $("gpus-none").hidden = gpus.length > 0 || executors.some((e) => e.class === "gpu");
    $("gpus").replaceChildren(...gpus.map(([e, d]) => {
      const box = el("div", null, "gpu");
      box.dataset.device = d.device;
      const head = el("div");
      head.appendChild(el("b", d.device));
      head.appendChild(el("span", " on " + e.id, "muted"));
      box.appendChild(head);
      box.appendChild(progressBar(d.used_bytes, d.budget_bytes));
      box.appendChild(el("div", "warm cache: " + fmtBytes(d.used_bytes) + " of " + fmtBytes(d.budget_bytes) +
        " · " + d.evictions + " evictions", "muted"));
      box.appendChild(el("div", "warm hits " + d.hits + " · cold starts " + d.misses + " (" +
        fmtUs(d.cold_start_us) + " in init)"));
      box.appendChild(el("div", "launches " + d.launches + " · " +
        (d.launches ? (d.bundled_calls / d.launches).toFixed(1) : "–") + " calls per launch (bundling)"));
      return box;
    }));
  }

  // ---- the loop -----------------------------------------------------------------------

  function showErrors(errors) {
    const box = $("errors");
    box.hidden = errors.length === 0;
    box.replaceChildren(...errors.map((m) => el("div", m)));
  }

  // One refresh at a time: a refresh asked for while one runs (a click) follows it.
  let busy = false;
  let again = false;

  async function tick() {
    if (busy) { again = true; return; }
    busy = true;
    clearTimeout(view.timer);
    const errors = [];
    const guard = (p) => p.catch((e) => { errors.push(e && e.message ? e.message : String(e)); });
    try {
      await Promise.all([guard(refreshHealth()), guard(refreshJobs()), guard(refreshExecutors())]);
      await guard(refreshJob());
      showErrors(errors);
      view.updates++;
      document.body.dataset.updates = view.updates;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } finally {
      busy = false;
    }
    if (again) { again = false; tick(); return; }
    if ($("live").checked) view.timer = setTimeout(tick, POLL_MS);
  }

  window.addEventListener("error", (e) => showErrors(["script error: " + e.message]));
  $("live").addEventListener("change", () => { if ($("live").checked) tick(); else clearTimeout(view.timer); });
  if (view.job) select(view.job);
  tick();
})();
