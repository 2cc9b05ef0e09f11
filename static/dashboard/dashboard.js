/* The staff dashboard: loads /api/v1/metrics with the session cookie and draws it with Chart.js.
 *
 * No inline script anywhere (the pages run under a strict Content-Security-Policy): the page's
 * template only carries data-* attributes. Every chart has a table with the same figures for
 * screen readers and for copying. Colours follow prefers-color-scheme through the CSS variables
 * of site.css. */
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  if (!root) return;
  const metricsUrl = root.dataset.metricsUrl;
  const refreshMs = Number(root.dataset.refreshSeconds || 30) * 1000;
  const statusLine = document.getElementById("dash-status");
  const windowSelect = document.getElementById("dash-window");
  const usageOrder = document.getElementById("dash-usage-order");
  const autoBox = document.getElementById("dash-auto");
  const charts = {};
  let lastData = null;
  let timer = null;
  let inFlight = null;

  const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const fmt = (value, suffix) => (value === null || value === undefined ? "–" : number.format(value) + (suffix || ""));

  // --- theme ---------------------------------------------------------------------------------
  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }
  function palette() {
    const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    return {
      fg: cssVar("--fg", dark ? "#e6e6e9" : "#1b1b1f"),
      bg: /^#[0-9a-f]{6}$/i.test(cssVar("--bg", "")) ? cssVar("--bg", "") : dark ? "#18181b" : "#fafafa",
      muted: cssVar("--muted", dark ? "#aaa" : "#666"),
      grid: dark ? "rgba(255,255,255,0.12)" : "rgba(0,0,0,0.1)",
      accent: cssVar("--accent", dark ? "#748ffc" : "#3b5bdb"),
      // Distinguishable in both schemes (Okabe–Ito based).
      series: dark
        ? ["#748ffc", "#ffa94d", "#63e6be", "#ff8787", "#da77f2", "#ffd43b", "#74c0fc", "#a9e34b"]
        : ["#3b5bdb", "#e8590c", "#0ca678", "#c92a2a", "#9c36b5", "#f08c00", "#1971c2", "#5c940d"],
      ok: dark ? "#69db7c" : "#2b8a3e",
      redirect: dark ? "#74c0fc" : "#1971c2",
      client: dark ? "#ffa94d" : "#e8590c",
      server: dark ? "#ff8787" : "#c92a2a",
    };
  }
  function applyTheme() {
    const p = palette();
    Chart.defaults.color = p.fg;
    Chart.defaults.borderColor = p.grid;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.animation = false; // refreshes every 30 s: no motion, and charts are drawn at once
    Chart.defaults.maintainAspectRatio = false;
    return p;
  }

  // --- panels ----------------------------------------------------------------------------------
  function panel(id) {
    const section = root.querySelector('[data-chart="' + id + '"]');
    return {
      section: section,
      canvas: section.querySelector("canvas"),
      box: section.querySelector('[data-role="canvas-box"]'),
      note: section.querySelector('[data-role="note"]'),
      empty: section.querySelector('[data-role="empty"]'),
      thead: section.querySelector("thead"),
      tbody: section.querySelector("tbody"),
    };
  }

  function setTable(p, columns, rows) {
    const head = document.createElement("tr");
    columns.forEach(function (col) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = col.label;
      if (col.num) th.className = "num";
      head.appendChild(th);
    });
    p.thead.replaceChildren(head);
    p.tbody.replaceChildren.apply(
      p.tbody,
      rows.map(function (row) {
        const tr = document.createElement("tr");
        row.forEach(function (cell, i) {
          const td = document.createElement(i === 0 ? "th" : "td");
          if (i === 0) td.scope = "row";
          if (cell instanceof Node) td.appendChild(cell);
          else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
          if (columns[i].num) td.className = "num";
          tr.appendChild(td);
        });
        return tr;
      })
    );
  }

  function setNote(p, text) {
    p.note.textContent = text || "";
    p.note.hidden = !text;
  }

  /* Draw (or update in place) the chart of panel `id`; with no data, show the empty state. */
  function draw(id, hasData, emptyText, config) {
    const p = panel(id);
    p.empty.textContent = emptyText;
    p.empty.hidden = hasData;
    p.box.hidden = !hasData;
    const existing = charts[id];
    if (!hasData) {
      if (existing) {
        existing.destroy();
        delete charts[id];
      }
      return p;
    }
    if (existing && existing.config.type === config.type) {
      existing.data = config.data;
      existing.options = config.options || {};
      existing.update("none");
    } else {
      if (existing) existing.destroy();
      charts[id] = new Chart(p.canvas, config);
    }
    return p;
  }

  function timeLabel(iso, bucket) {
    const date = new Date(iso);
    if (bucket === "day") return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    if (bucket === "minute") return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  /* A colour per status class (green 2xx, blue 3xx, orange 4xx, red 5xx), lighter for each further code of a class. */
  function statusColours(codes, p) {
    const seen = {};
    return codes.map(function (code) {
      const base = code >= 500 ? p.server : code >= 400 ? p.client : code >= 300 ? p.redirect : p.ok;
      const klass = Math.floor(code / 100);
      const nth = (seen[klass] = (seen[klass] || 0) + 1) - 1;
      return nth === 0 ? base : mix(base, p.bg, Math.min(0.65, nth * 0.22));
    });
  }

  /* `hex` moved `amount` (0..1) of the way towards `other` (both #rrggbb). */
  function mix(hex, other, amount) {
    const a = parseInt(hex.slice(1), 16);
    const b = parseInt(other.slice(1), 16);
    const channel = function (shift) {
      const x = (a >> shift) & 255;
      const y = (b >> shift) & 255;
      return Math.round(x + (y - x) * amount);
    };
    return "rgb(" + channel(16) + ", " + channel(8) + ", " + channel(0) + ")";
  }

  /* A name with a muted second line (a key's prefix and owner). */
  function twoLines(first, second) {
    const fragment = document.createDocumentFragment();
    fragment.append(first);
    if (second) {
      const sub = document.createElement("span");
      sub.className = "dash-sub";
      sub.textContent = second;
      fragment.append(sub);
    }
    return fragment;
  }

  function money(value, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency, maximumFractionDigits: 4 }).format(value);
    } catch (error) {
      return number.format(value) + " " + currency; // not an ISO 4217 code: the figure and the setting as written
    }
  }

  /* The usage ledger's heaviest users, keys and models: one table each. */
  function renderUsage(usage) {
    const cost = function (row) { return money(row.cost, usage.currency); };
    const tables = {
      users: {
        first: "User",
        label: function (row) { return row.id === null ? "Anonymous" : row.name; },
        rows: usage.top_users,
      },
      keys: {
        first: "API key",
        label: function (row) {
          if (row.id === null) return twoLines("No key", "logins: session or token");
          return twoLines(row.name || row.prefix || "Key #" + row.id, [row.prefix, row.user].filter(Boolean).join(" · "));
        },
        rows: usage.top_keys,
      },
      models: { first: "Model", label: function (row) { return row.name; }, rows: usage.top_models },
    };
    Object.keys(tables).forEach(function (id) {
      const spec = tables[id];
      const section = root.querySelector('[data-usage="' + id + '"]');
      section.querySelector('[data-role="empty"]').hidden = spec.rows.length > 0;
      section.querySelector('[data-role="table-box"]').hidden = spec.rows.length === 0;
      setTable(
        { thead: section.querySelector("thead"), tbody: section.querySelector("tbody") },
        [{ label: spec.first }, { label: "Requests", num: true }, { label: "Tokens", num: true }, { label: "Cost", num: true }],
        spec.rows.map(function (row) { return [spec.label(row), fmt(row.requests), fmt(row.total_tokens), cost(row)]; })
      );
    });
  }

  // --- rendering -------------------------------------------------------------------------------
  function render(data) {
    const p = applyTheme();
    const req = data.requests;
    const cache = data.inference.cache;
    const cards = {
      requests: fmt(req.total),
      server_errors: fmt(req.server_errors),
      client_errors: fmt(req.client_errors),
      avg_ms: fmt(req.avg_ms, " ms"),
      streamed: fmt(req.streamed),
      hit_rate: cache.hit_rate === null ? "–" : percent.format(cache.hit_rate),
      vectors: fmt(data.embeddings.index.vectors === null ? data.embeddings.indexed : data.embeddings.index.vectors),
      documents: fmt(data.embeddings.documents),
    };
    root.querySelectorAll("#dash-cards dd[data-field]").forEach(function (dd) {
      dd.textContent = cards[dd.dataset.field];
    });

    const endpoints = data.endpoints;
    const labels = endpoints.map(function (e) { return e.endpoint; });
    const horizontal = {
      indexAxis: "y",
      scales: { y: { ticks: { autoSkip: false } }, x: { beginAtZero: true } },
      plugins: { legend: { display: false } },
    };
    let q = draw("endpoints", endpoints.length > 0, "No requests in this window yet.", {
      type: "bar",
      data: { labels: labels, datasets: [{ label: "Requests", data: endpoints.map(function (e) { return e.requests; }), backgroundColor: p.accent }] },
      options: horizontal,
    });
    setTable(q, [{ label: "Endpoint" }, { label: "Requests", num: true }, { label: "5xx", num: true }],
      endpoints.map(function (e) { return [e.endpoint, e.requests, e.errors]; }));

    q = draw("latency", endpoints.length > 0, "No requests in this window yet.", {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "Average (ms)", data: endpoints.map(function (e) { return e.avg_ms; }), backgroundColor: p.series[0] },
          { label: "p95 (ms)", data: endpoints.map(function (e) { return e.p95_ms; }), backgroundColor: p.series[1] },
        ],
      },
      options: { indexAxis: "y", scales: { y: { ticks: { autoSkip: false } }, x: { beginAtZero: true } } },
    });
    setTable(q, [{ label: "Endpoint" }, { label: "Avg ms", num: true }, { label: "p50 ms", num: true }, { label: "p95 ms", num: true }, { label: "Max ms", num: true }],
      endpoints.map(function (e) { return [e.endpoint, fmt(e.avg_ms), fmt(e.p50_ms), fmt(e.p95_ms), fmt(e.max_ms)]; }));

    const statuses = data.status_codes;
    q = draw("statuses", statuses.length > 0, "No requests in this window yet.", {
      type: "doughnut",
      data: {
        labels: statuses.map(function (s) { return String(s.status); }),
        datasets: [{ data: statuses.map(function (s) { return s.count; }), backgroundColor: statusColours(statuses.map(function (s) { return s.status; }), p) }],
      },
      options: { plugins: { legend: { position: "right" } } },
    });
    setTable(q, [{ label: "Status" }, { label: "Requests", num: true }], statuses.map(function (s) { return [s.status, s.count]; }));

    const timeOptions = {
      scales: {
        x: { ticks: { maxTicksLimit: 8, maxRotation: 0 } },
        y: { beginAtZero: true, ticks: { precision: 0 } },
      },
      interaction: { mode: "index", intersect: false },
    };
    const timeline = data.timeline;
    q = draw("timeline", req.total > 0, "No requests in this window yet.", {
      type: "line",
      data: {
        labels: timeline.map(function (t) { return timeLabel(t.t, data.bucket); }),
        datasets: [
          { label: "Requests", data: timeline.map(function (t) { return t.requests; }), borderColor: p.accent, backgroundColor: p.accent, pointRadius: 0, tension: 0.2 },
          { label: "5xx", data: timeline.map(function (t) { return t.errors; }), borderColor: p.server, backgroundColor: p.server, pointRadius: 0, tension: 0.2 },
        ],
      },
      options: timeOptions,
    });
    setNote(q, "One point per " + data.bucket + ".");
    setTable(q, [{ label: "From" }, { label: "Requests", num: true }, { label: "5xx", num: true }],
      timeline.filter(function (t) { return t.requests > 0; }).map(function (t) { return [timeLabel(t.t, data.bucket), t.requests, t.errors]; }));

    const generated = cache.requests - cache.cached;
    q = draw("cache", cache.requests > 0, "No completion requests in this window yet.", {
      type: "doughnut",
      data: { labels: ["Answered from the cache", "Generated"], datasets: [{ data: [cache.cached, generated], backgroundColor: [p.ok, p.series[0]] }] },
      options: { plugins: { legend: { position: "bottom" } } },
    });
    const life = cache.lifetime;
    setNote(q, "Since the cache was last cleared: " + fmt(life.hits) + " hits, " + fmt(life.misses) + " misses (" +
      (life.hits + life.misses ? percent.format(life.hit_rate) : "no lookups") + ").");
    setTable(q, [{ label: "Completion requests" }, { label: "Count", num: true }],
      [["Answered from the cache", cache.cached], ["Generated", generated], ["Cache hits since last clear", life.hits], ["Cache misses since last clear", life.misses]]);

    const models = data.inference.models;
    const timed = models.filter(function (m) { return m.tokens_per_second !== null; });
    q = draw("tokens", timed.length > 0, "No generated (uncached) answers in this window yet.", {
      type: "bar",
      data: {
        labels: timed.map(function (m) { return m.provider + ": " + m.model; }),
        datasets: [{ label: "Tokens per second", data: timed.map(function (m) { return m.tokens_per_second; }), backgroundColor: p.series[2] }],
      },
      options: horizontal,
    });
    setTable(q, [{ label: "Provider: model" }, { label: "Requests", num: true }, { label: "Cached", num: true }, { label: "Tokens out", num: true }, { label: "Tokens/s", num: true }, { label: "TTFT avg ms", num: true }, { label: "TTFT p95 ms", num: true }],
      models.map(function (m) { return [m.provider + ": " + m.model, m.requests, m.cached, m.completion_tokens, fmt(m.tokens_per_second), fmt(m.ttft_avg_ms), fmt(m.ttft_p95_ms)]; }));

    const fb = data.feedback;
    q = draw("feedback", fb.up + fb.down > 0, "No feedback in this window yet.", {
      type: "line",
      data: {
        labels: fb.timeline.map(function (t) { return timeLabel(t.t, fb.bucket); }),
        datasets: [
          { label: "Thumbs up", data: fb.timeline.map(function (t) { return t.up; }), borderColor: p.ok, backgroundColor: p.ok, tension: 0.2 },
          { label: "Thumbs down", data: fb.timeline.map(function (t) { return t.down; }), borderColor: p.server, backgroundColor: p.server, tension: 0.2 },
        ],
      },
      options: timeOptions,
    });
    setNote(q, fb.up + fb.down > 0 ? fmt(fb.up) + " up, " + fmt(fb.down) + " down; one point per " + fb.bucket + "." : "");
    setTable(q, [{ label: "From" }, { label: "Up", num: true }, { label: "Down", num: true }],
      fb.timeline.filter(function (t) { return t.up + t.down > 0; }).map(function (t) { return [timeLabel(t.t, fb.bucket), t.up, t.down]; }));

    const runs = data.training.runs;
    const latest = runs.length ? runs[0] : null;
    const epochs = latest ? latest.epochs : [];
    const emptyTraining = !data.training.available ? "Training is not installed on this site." :
      !latest ? "No training run yet." : "Run #" + latest.id + " (" + latest.status + ") has no finished epoch yet.";
    q = draw("training", epochs.length > 0, emptyTraining, {
      type: "line",
      data: {
        labels: epochs.map(function (e) { return "Epoch " + e.epoch; }),
        datasets: [
          { label: "Training loss", data: epochs.map(function (e) { return e.train_loss; }), borderColor: p.series[0], backgroundColor: p.series[0] },
          { label: "Evaluation loss", data: epochs.map(function (e) { return e.eval_loss; }), borderColor: p.series[1], backgroundColor: p.series[1], spanGaps: true },
        ],
      },
      options: { interaction: { mode: "index", intersect: false } },
    });
    setNote(q, latest ? "Run #" + latest.id + " " + latest.name + " (" + latest.status + "), from " + latest.base_model + "." : "");
    setTable(q, [{ label: "Epoch" }, { label: "Step", num: true }, { label: "Training loss", num: true }, { label: "Evaluation loss", num: true }, { label: "Tokens/s", num: true }],
      epochs.map(function (e) { return [e.epoch, e.step, e.train_loss.toFixed(4), e.eval_loss === null ? null : e.eval_loss.toFixed(4), fmt(e.tokens_per_second)]; }));

    renderUsage(data.usage);
  }

  // --- loading ---------------------------------------------------------------------------------
  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("is-error", Boolean(isError));
  }

  async function load() {
    if (typeof Chart === "undefined") {
      setStatus("The chart library did not load; the figures are in the JSON at " + metricsUrl + ".", true);
      return;
    }
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const window_ = windowSelect.value;
    try {
      const query = "?window=" + encodeURIComponent(window_) + "&usage_order=" + encodeURIComponent(usageOrder.value);
      const response = await fetch(metricsUrl + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      if (response.status === 401 || response.status === 403) {
        setStatus("Your session has ended or is not staff: log in again to see the metrics.", true);
        return;
      }
      const body = await response.json();
      if (!response.ok) {
        setStatus("Could not load the metrics: " + ((body.error && body.error.message) || response.statusText), true);
        return;
      }
      lastData = body;
      render(body);
      setStatus("Last " + body.window + ", updated " + new Date().toLocaleTimeString() + ".");
    } catch (error) {
      if (error.name === "AbortError") return;
      setStatus("Could not load the metrics: " + error.message, true);
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = null;
    if (autoBox.checked) {
      timer = setInterval(function () {
        if (!document.hidden) load();
      }, refreshMs);
    }
  }

  document.getElementById("dash-refresh").addEventListener("click", load);
  document.getElementById("dash-controls").addEventListener("submit", function (event) {
    event.preventDefault();
    load();
  });
  windowSelect.addEventListener("change", load);
  usageOrder.addEventListener("change", load);
  autoBox.addEventListener("change", schedule);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && autoBox.checked) load();
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
    Object.keys(charts).forEach(function (id) {
      charts[id].destroy();
      delete charts[id];
    });
    if (lastData) render(lastData);
  });

  load();
  schedule();
})();
