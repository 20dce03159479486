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
  /* the server sends [backlog, in flight, done, failed] per point (a compact form) */
  var history = {};
  (function (raw) {
    Object.keys(raw).forEach(function (q) {
      history[q] = raw[q].map(function (p) {
        return { backlog: p[0], in_flight: p[1], finished: p[2], failed: p[3] };
      });
    });
  })(readJSON("history"));
  function fmt(k, q) {
    if (k === "oldest_ready_age") return q[k].toFixed(1) + " s";
    if (k === "failure_rate") return (q[k] * 100).toFixed(0) + " %";
    if (k === "workers_busy") return q.live_workers + " (" + q.busy_workers + ")";
    return q[k];
  }
  var pager = document.getElementById("pager");
  function updateQueues(msg) {
    if (pager && msg.registered != null && String(msg.registered) !== pager.getAttribute("data-registered")) {
      document.getElementById("changed").hidden = false;
    }
    msg.queues.forEach(function (q) {
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
      var bad = (w.problems || []).join(", ");
      if (bad) { tr.className = "malformed"; tr.title = "malformed worker document: " + bad; }
      var first = el("td", w.id);
      if (bad) { first.appendChild(document.createTextNode(" ")); first.appendChild(el("span", "malformed: " + bad, "badge")); }
      tr.appendChild(first);
      [w.pod, w.host, (w.queues || []).join(", "), w.pool + " × " + w.concurrency].forEach(function (v) {
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
      tr.appendChild(el("td", w.cpu_seconds == null ? "" : w.cpu_seconds, "n"));
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
  /* pages with nothing live (a job, dead letters, log in) open no stream: no poll for them */
  if (["overview", "queue", "workers", "scaling"].indexOf(page) < 0) return;
  var live = document.getElementById("live");
  /* the poll reads what this page shows: its queues, or the workers, or the cluster */
  var shown = {};
  document.querySelectorAll("[data-q]").forEach(function (n) { shown[n.getAttribute("data-q")] = true; });
  var params = Object.keys(shown).map(function (q) { return "q=" + encodeURIComponent(q); });
  if (page === "workers") params.push("workers=1");
  if (page === "scaling") params.push("cluster=1");
  var source = new EventSource("/events" + (params.length ? "?" + params.join("&") : ""));
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
