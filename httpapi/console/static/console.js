// cdnflow console: live updates without a framework. Pages other than a
// distribution's are re-read every 2 s and their <main> swapped (unless
// the keyboard focus is inside it); a distribution's page reads its live
// traffic every second and draws the chart.
"use strict";
(function () {
  const live = () => { const c = document.getElementById("live"); return !c || c.checked; };
  const fmt = {
    pct: (v) => (v < 0 ? "–" : Math.round(v * 100) + " %"),
    num: (v) => (v >= 100 ? Math.round(v).toString() : v.toFixed(1)),
    bytes: (v) => (v >= 1 << 20 ? (v / (1 << 20)).toFixed(1) + " MiB" : v >= 1024 ? (v / 1024).toFixed(1) + " KiB" : Math.round(v) + " B"),
  };
  function localTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach((t) => { t.textContent = new Date(Number(t.dataset.ms)).toLocaleString(); });
  }
  async function refreshMain() {
    const main = document.getElementById("main");
    if (!live() || document.hidden || (main.contains(document.activeElement) && document.activeElement !== main)) return;
    const r = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!r.ok || r.redirected) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("main");
    if (fresh) { main.innerHTML = fresh.innerHTML; localTimes(main); }
  }
  // sum adds the counts of points; ratio of hits among cacheable requests.
  function sum(points) {
    const s = { requests: 0, hit: 0, miss: 0, pass: 0, stale: 0, bytes: 0, status5xx: 0, originFetches: 0, originMillis: 0 };
    for (const p of points) for (const k in s) s[k] += p[k] || 0;
    s.ratio = s.hit + s.stale + s.miss + s.pass ? (s.hit + s.stale) / (s.hit + s.stale + s.miss + s.pass) : -1;
    return s;
  }
  // lastComplete are the 3 complete seconds before the edge's now.
  function lastComplete(series, now) {
    const pts = (series && series.points) || [];
    return pts.filter((p) => p.t < now && p.t >= now - 3);
  }
  function setCell(attr, id, text, value) {
    const td = document.querySelector("[" + attr + '="' + CSS.escape(id) + '"]');
    if (td) { td.textContent = text; if (value !== undefined) td.dataset.value = value; }
  }
  function draw(svg, series, now) {
    const pts = ((series && series.points) || []).filter((p) => p.t < now);
    const W = 600, H = 180, pad = 24, n = 120;
    const max = Math.max(1, ...pts.map((p) => p.requests));
    const x = (t) => pad + ((t - (now - n)) / n) * (W - 2 * pad);
    let html = '<text x="4" y="14">' + Math.round(max) + ' req/s</text><text x="' + (W - 70) + '" y="14">hit ratio</text>';
    const bw = (W - 2 * pad) / n;
    const line = [];
    for (const p of pts) {
      const h = (p.requests / max) * (H - 2 * pad);
      html += '<rect class="bar" x="' + x(p.t).toFixed(1) + '" y="' + (H - pad - h).toFixed(1) + '" width="' + Math.max(1, bw - 1).toFixed(1) + '" height="' + h.toFixed(1) + '"></rect>';
      const r = sum([p]).ratio;
      if (r >= 0) line.push(x(p.t).toFixed(1) + "," + (H - pad - r * (H - 2 * pad)).toFixed(1));
    }
    html += '<polyline class="ratio" points="' + line.join(" ") + '"></polyline>';
    html += '<text x="' + pad + '" y="' + (H - 6) + '">−2 min</text><text x="' + (W - pad - 20) + '" y="' + (H - 6) + '">now</text>';
    svg.innerHTML = html;
  }
  async function refreshTraffic(sec) {
    if (!live() || document.hidden) return;
    const status = document.getElementById("traffic-status");
    const r = await fetch(sec.dataset.trafficUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) { status.textContent = "Live traffic unavailable (" + r.status + ")."; return; }
    const v = await r.json();
    let now = 0, missing = [];
    for (const e of v.edges) {
      if (e.error) { missing.push(e.edge); continue; }
      now = Math.max(now, e.now);
      const s = sum(lastComplete(e.series[0], e.now));
      setCell("data-rps", e.edge, fmt.num(s.requests / 3), s.requests / 3);
      setCell("data-hit-ratio", e.edge, fmt.pct(s.ratio), s.ratio);
      setCell("data-origin-ms", e.edge, s.originFetches ? Math.round(s.originMillis / s.originFetches) + " ms" : "–");
      setCell("data-5xx", e.edge, fmt.num(s.status5xx / 3));
      setCell("data-bytes", e.edge, fmt.bytes(s.bytes / 3));
    }
    const total = (v.total || [])[0];
    draw(document.getElementById("chart"), total, now);
    const t = sum(lastComplete(total, now));
    document.getElementById("chart-summary").textContent = "Last 3 s: " + fmt.num(t.requests / 3) + " req/s, hit ratio " + fmt.pct(t.ratio) + ".";
    status.textContent = missing.length ? "No live traffic from: " + missing.join(", ") + "." : "Updated " + new Date().toLocaleTimeString() + ".";
  }
  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    const sec = document.getElementById("traffic");
    if (sec) {
      const tick = () => refreshTraffic(sec).catch(() => {});
      tick();
      setInterval(tick, 1000);
    } else if (document.body.dataset.page !== "login") {
      setInterval(() => refreshMain().catch(() => {}), 2000);
    }
  });
})();
