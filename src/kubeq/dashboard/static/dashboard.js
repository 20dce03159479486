/* kubeq dashboard: live numbers over server-sent events (/events), about once a second.
   Every value from the server goes into the page with textContent, never innerHTML, so a
   job argument or a worker name can only ever be text. No framework, no CDN. */
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  var MAX = 600;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function ago(ts, now) {
    if (!ts) return "";
    var s = Math.max(0, now - ts);
    if (s < 120) return s.toFixed(0) + " s";
    if (s < 7200) return (s / 60).toFixed(0) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function mib(n) { return n == null ? "" : (n / 1048576).toFixed(1) + " MiB"; }
  function when(ts) {
    return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "";
  }
  function readJSON(id) {
    var node = document.getElementById(id);
    if (!node) return {};
    try { return JSON.parse(node.textContent); } catch (e) { return {}; }
  }
  function esc(s) { return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, "\\$&"); }

  /* -- small charts: one polyline per series, in an SVG viewBox -- */
  var SVGNS = "http://www.w3.org/2000/svg";
  /* each call scales its own series (keep = draw over what is there) */
  function draw(svg, points, series, width, height, keep) {
    if (!keep) while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!points.length) return;
    var max = 1;
    series.forEach(function (k) {
      points.forEach(function (p) { if (p[k] > max) max = p[k]; });
    });
    var step = width / Math.max(60, points.length - 1);  /* fills up, then scrolls */
    var x0 = width - (points.length - 1) * step;
    series.forEach(function (k) {
      var pl = document.createElementNS(SVGNS, "polyline");
      pl.setAttribute("class", "line " + k);
      pl.setAttribute("points", points.map(function (p, i) {
        var v = p[k] == null ? 0 : p[k];
        return (x0 + i * step).toFixed(1) + "," + (height - 1 - (v / max) * (height - 2)).toFixed(1);
      }).join(" "));
      svg.appendChild(pl);
    });
  }

  /* -- overview and queue pages -- */
  var history = readJSON("history");
  function fmt(k, q) {
    if (k === "oldest_ready_age") return q[k].toFixed(1) + " s";
    if (k === "failure_rate") return (q[k] * 100).toFixed(0) + " %";
    if (k === "workers_busy") return q.live_workers + " (" + q.busy_workers + ")";
    return q[k];
  }
  function addRow(q) {
    var body = document.querySelector("#queues tbody");
    if (!body) return;
    var tr = el("tr");
    tr.setAttribute("data-row", q.queue);
    var first = el("td");
    var a = el("a", q.queue);
    a.href = "/queues/" + encodeURIComponent(q.queue);
    first.appendChild(a);
    first.appendChild(document.createTextNode(" "));
    var b = el("span", "paused", "badge paused");
    b.setAttribute("data-q", q.queue); b.setAttribute("data-k", "paused");
    first.appendChild(b);
    tr.appendChild(first);
    ["backlog", "in_flight", "delayed", "dead", "oldest_ready_age", "workers_busy",
     "per_minute", "failure_rate"].forEach(function (k) {
      var td = el("td", "", "n");
      td.setAttribute("data-q", q.queue); td.setAttribute("data-k", k);
      tr.appendChild(td);
    });
    var sparkCell = el("td");
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 300 40");
    svg.setAttribute("preserveAspectRatio", "none"); svg.setAttribute("data-spark", q.queue);
    sparkCell.appendChild(svg); tr.appendChild(sparkCell);
    body.appendChild(tr);
    var empty = document.getElementById("empty");
    if (empty) empty.hidden = true;
  }
  function updateQueues(msg) {
    msg.queues.forEach(function (q) {
      if (page === "overview" && !document.querySelector('tr[data-row="' + esc(q.queue) + '"]')) addRow(q);
      document.querySelectorAll('[data-q="' + esc(q.queue) + '"]').forEach(function (node) {
        var k = node.getAttribute("data-k");
        if (k === "paused") { node.hidden = !q.paused; return; }
        node.textContent = fmt(k, q);
      });
      var h = history[q.queue] || (history[q.queue] = []);
      h.push({ t: msg.now, backlog: q.backlog, in_flight: q.in_flight, finished: q.finished, failed: q.failed });
      if (h.length > MAX) h.splice(0, h.length - MAX);
    });
    document.querySelectorAll("svg[data-spark]").forEach(function (svg) {
      var pts = history[svg.getAttribute("data-spark")] || [];
      /* workers report every ~2 s: chart jobs done over the last 5 polls, not per poll */
      var done = pts.map(function (p, i) {
        var sum = 0;
        for (var j = Math.max(0, i - 4); j <= i; j++) sum += pts[j].finished || 0;
        return { done: sum };
      });
      draw(svg, pts, ["backlog", "in_flight"], 300, 40);
      draw(svg, done, ["done"], 300, 40, true);
    });
  }

  /* -- workers page -- */
  function updateWorkers(msg) {
    var body = document.getElementById("workers-body");
    if (!body) return;
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!msg.workers.length) {
      var tr0 = el("tr", null, "none"); var td0 = el("td", "No live worker.");
      td0.colSpan = 11; tr0.appendChild(td0); body.appendChild(tr0); return;
    }
    msg.workers.forEach(function (w) {
      var tr = el("tr");
      [w.id, w.pod, w.host, (w.queues || []).join(", "), w.pool + " × " + w.concurrency].forEach(function (v) {
        tr.appendChild(el("td", v));
      });
      tr.appendChild(el("td", w.prefetched ? w.busy + " +" + w.prefetched + " prefetched" : w.busy, "n"));
      var running = el("td");
      (w.jobs || []).forEach(function (j) {
        var d = el("div"); var a = el("a", j.task);
        a.href = "/jobs/" + encodeURIComponent(j.queue) + "/" + encodeURIComponent(j.id);
        d.appendChild(a); d.appendChild(document.createTextNode(" " + ago(j.started_at, msg.now)));
        running.appendChild(d);
      });
      tr.appendChild(running);
      tr.appendChild(el("td", when(w.started_at)));
      tr.appendChild(el("td", ago(w.at, msg.now) + " ago"));
      tr.appendChild(el("td", mib(w.rss_bytes), "n"));
      tr.appendChild(el("td", w.cpu_seconds, "n"));
      body.appendChild(tr);
    });
  }

  /* -- scaling page -- */
  var scaling = readJSON("scaling-series");
  function fillTable(table, rows) {
    var body = table.querySelector("tbody");
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (c) { tr.appendChild(el("td", c)); });
      body.appendChild(tr);
    });
  }
  function updateScaling(msg) {
    var cluster = msg.cluster;
    if (!cluster || !cluster.taskqueues) return;
    cluster.taskqueues.forEach(function (tq) {
      var key = tq.namespace + "/" + tq.name;
      document.querySelectorAll('[data-tq="' + esc(key) + '"][data-k]').forEach(function (node) {
        var k = node.getAttribute("data-k");
        if (k === "conditions") {
          fillTable(node, tq.conditions.map(function (c) { return [c.type, c.status, c.reason, c.message]; }));
        } else if (k === "events") {
          fillTable(node, tq.events.map(function (e) { return [ago(e.time, msg.now) + " ago", e.type, e.reason, e.message]; }));
        } else {
          node.textContent = tq[k] == null ? "" : tq[k];
        }
      });
      var s = scaling[key] || (scaling[key] = []);
      s.push({ t: msg.now, desired: tq.desired, current: tq.current, backlog: tq.backlog, in_flight: tq.in_flight });
      if (s.length > MAX) s.splice(0, s.length - MAX);
    });
    document.querySelectorAll("svg[data-tqchart]").forEach(function (svg) {
      var pts = scaling[svg.getAttribute("data-tqchart")] || [];
      draw(svg, pts, ["backlog", "in_flight"], 600, 80);
      draw(svg, pts, ["desired", "current"], 600, 80, true);
    });
  }

  updateQueues({ queues: [], now: 0 });
  updateScaling({ cluster: { taskqueues: [] }, now: 0 });
  if (!window.EventSource) return;
  var live = document.getElementById("live");
  var source = new EventSource("/events");
  source.onmessage = function (event) {
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (msg.error) { live.className = "live down"; live.title = msg.error; return; }
    live.className = "live up"; live.title = "live: updated " + when(msg.now);
    document.body.setAttribute("data-updated", String(msg.now));
    if (page === "overview" || page === "queue") updateQueues(msg);
    if (page === "workers") updateWorkers(msg);
    if (page === "scaling") updateScaling(msg);
  };
  source.onerror = function () { live.className = "live down"; };
})();
