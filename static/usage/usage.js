/* The usage page: loads /api/v1/usage and /api/v1/auth/keys with the session cookie and shows
 * the totals, each limit as a bar, tokens per day as a Chart.js chart, usage per model and per key.
 *
 * No inline script anywhere (the pages run under a strict Content-Security-Policy): the page's
 * template only carries data-* attributes and the tables' headers. Every figure is written with
 * textContent, never as HTML. Colours follow prefers-color-scheme through the CSS variables of
 * site.css. */
(function () {
  "use strict";

  const root = document.getElementById("usage");
  if (!root) return;
  const usageUrl = root.dataset.usageUrl;
  const keysUrl = root.dataset.keysUrl;
  const currency = root.dataset.currency || "USD";
  const statusLine = document.getElementById("usage-status");
  const spanSelect = document.getElementById("usage-span");
  const DAY_MS = 24 * 60 * 60 * 1000;
  let chart = null;
  let last = null;
  let inFlight = null;

  const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  let currencyFormat = null;
  try {
    currencyFormat = new Intl.NumberFormat(undefined, { style: "currency", currency: currency, maximumFractionDigits: 4 });
  } catch (error) {
    currencyFormat = null; // not an ISO 4217 code: the figure is followed by the setting as written
  }
  const plainMoney = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });

  function money(value) {
    return currencyFormat ? currencyFormat.format(value) : plainMoney.format(value) + " " + currency;
  }

  const KIND_LABELS = {
    requests_per_minute: "Requests per minute",
    tokens_per_minute: "Tokens per minute",
    tokens_per_day: "Tokens per day (UTC)",
    tokens_per_month: "Tokens per month (UTC)",
    spend_per_day: "Spend per day (UTC)",
    spend_per_month: "Spend per month (UTC)",
  };

  function kindLabel(kind) {
    return KIND_LABELS[kind] || kind.replace(/_/g, " ");
  }

  /* A limit's figures in its unit: spend in the currency, requests and tokens as whole numbers. */
  function inUnit(kind, value) {
    return kind.indexOf("spend_") === 0 ? money(value) : integer.format(value);
  }

  /* "in 5 hours", "3 minutes ago": the largest unit that fits. */
  function fromNow(date) {
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    const steps = [
      ["day", 86400],
      ["hour", 3600],
      ["minute", 60],
    ];
    for (const [unit, size] of steps) {
      if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
    }
    return relative.format(seconds, "second");
  }

  function dateTime(date) {
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* Fill a table body: one row per item, the first cell a row header; `num` columns align right. */
  function fillRows(tbody, rows, numeric) {
    tbody.replaceChildren.apply(
      tbody,
      rows.map(function (row) {
        const tr = document.createElement("tr");
        if (row.className) tr.className = row.className;
        row.cells.forEach(function (cell, i) {
          const td = document.createElement(i === 0 ? "th" : "td");
          if (i === 0) td.scope = "row";
          if (numeric[i]) td.className = "num";
          td.textContent = cell === null || cell === undefined ? "–" : String(cell);
          tr.appendChild(td);
        });
        return tr;
      })
    );
  }

  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }

  // --- theme -----------------------------------------------------------------------------------
  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function palette() {
    const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    return {
      fg: cssVar("--fg", dark ? "#e6e6e9" : "#1b1b1f"),
      grid: dark ? "rgba(255,255,255,0.12)" : "rgba(0,0,0,0.1)",
      prompt: cssVar("--accent", dark ? "#748ffc" : "#3b5bdb"),
      completion: dark ? "#ffa94d" : "#e8590c",
    };
  }

  // --- rendering -------------------------------------------------------------------------------
  function renderTotals(totals) {
    const details = [];
    if (totals.cached_requests) details.push(integer.format(totals.cached_requests) + " from the cache");
    if (totals.failed_requests) details.push(integer.format(totals.failed_requests) + " failed");
    if (totals.cancelled_requests) details.push(integer.format(totals.cancelled_requests) + " cancelled");
    const fields = {
      requests: integer.format(totals.requests),
      requests_detail: details.join(", "),
      total_tokens: integer.format(totals.total_tokens),
      tokens_detail: totals.total_tokens
        ? integer.format(totals.prompt_tokens) + " prompt, " + integer.format(totals.completion_tokens) + " completion"
        : "",
      cost: money(totals.cost),
    };
    root.querySelectorAll("#usage-totals dd[data-field]").forEach(function (dd) {
      dd.textContent = fields[dd.dataset.field];
      if (dd.classList.contains("usage-sub")) dd.hidden = !fields[dd.dataset.field];
    });
  }

  function renderLimits(limits) {
    const list = document.getElementById("usage-limits");
    list.replaceChildren.apply(
      list,
      limits.map(function (limit, i) {
        const item = el("li", "usage-limit");
        item.dataset.kind = limit.kind;
        item.dataset.scope = limit.scope;
        const labelId = "usage-limit-" + i;
        const head = el("div", "usage-limit-head");
        const name = el("span", "usage-limit-name", kindLabel(limit.kind) + (limit.scope === "key" ? " (this API key)" : ""));
        name.id = labelId;
        const figures = el(
          "span",
          "usage-limit-figures",
          inUnit(limit.kind, limit.used) + " of " + inUnit(limit.kind, limit.limit) + " used"
        );
        head.append(name, figures);
        const bar = document.createElement("meter");
        bar.min = 0;
        bar.max = limit.limit > 0 ? limit.limit : 1;
        bar.value = Math.min(limit.used, bar.max);
        bar.low = bar.max * 0.75; // green below three quarters, amber up to nine tenths, red above
        bar.high = bar.max * 0.9;
        bar.optimum = 0;
        bar.setAttribute("aria-labelledby", labelId);
        bar.textContent = inUnit(limit.kind, limit.used) + " of " + inUnit(limit.kind, limit.limit);
        const resets = new Date(limit.resets_at);
        const foot = el("p", "usage-limit-foot");
        foot.append(
          el("span", "usage-limit-remaining", inUnit(limit.kind, limit.remaining) + " remaining"),
          el("span", "usage-limit-reset", "Resets at " + dateTime(resets) + " (" + fromNow(resets) + ")")
        );
        foot.lastChild.title = limit.resets_at;
        item.append(head, bar, foot);
        return item;
      })
    );
    show("usage-limits-empty", limits.length === 0);
  }

  /* Every UTC day of the period, oldest first, with its row of by_day (zeros where there was none). */
  function everyDay(body) {
    const byDay = {};
    body.by_day.forEach(function (row) {
      byDay[row.day] = row;
    });
    const days = [];
    const end = Math.min(Date.now(), new Date(body.until).getTime());
    const start = new Date(body.since);
    for (let t = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()); t <= end; t += DAY_MS) {
      const day = new Date(t).toISOString().slice(0, 10);
      days.push(byDay[day] || { day: day, requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: 0 });
    }
    return days;
  }

  function dayLabel(day) {
    return new Date(day + "T00:00:00Z").toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  }

  function renderDays(body) {
    const hasUsage = body.by_day.some(function (row) { return row.total_tokens > 0 || row.requests > 0; });
    const canDraw = typeof Chart !== "undefined";
    show("usage-chart-box", hasUsage && canDraw);
    show("usage-days-details", hasUsage);
    document.getElementById("usage-days-details").open = hasUsage && !canDraw; // the table stands in for the chart
    show("usage-days-empty", !hasUsage);
    if (chart && !hasUsage) {
      chart.destroy();
      chart = null;
    }
    fillRows(
      document.querySelector("#usage-days tbody"),
      body.by_day.map(function (row) {
        return { cells: [row.day, integer.format(row.requests), integer.format(row.prompt_tokens), integer.format(row.completion_tokens), money(row.cost)] };
      }),
      [false, true, true, true, true]
    );
    if (!hasUsage || !canDraw) return;

    const p = palette();
    Chart.defaults.color = p.fg;
    Chart.defaults.borderColor = p.grid;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    const days = everyDay(body);
    const data = {
      labels: days.map(function (row) { return dayLabel(row.day); }),
      datasets: [
        { label: "Prompt tokens", data: days.map(function (row) { return row.prompt_tokens; }), backgroundColor: p.prompt },
        { label: "Completion tokens", data: days.map(function (row) { return row.completion_tokens; }), backgroundColor: p.completion },
      ],
    };
    const options = {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, ticks: { maxTicksLimit: 10, maxRotation: 0 } },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
      },
    };
    if (chart) {
      chart.data = data;
      chart.options = options;
      chart.update("none");
    } else {
      chart = new Chart(document.getElementById("usage-chart"), { type: "bar", data: data, options: options });
    }
  }

  function renderModels(byModel) {
    fillRows(
      document.querySelector("#usage-models tbody"),
      byModel.map(function (row) {
        return {
          cells: [row.model, integer.format(row.requests), integer.format(row.prompt_tokens), integer.format(row.completion_tokens), integer.format(row.total_tokens), money(row.cost)],
        };
      }),
      [false, true, true, true, true, true]
    );
    show("usage-models-box", byModel.length > 0);
    show("usage-models-empty", byModel.length === 0);
  }

  /* The user's keys (from /api/v1/auth/keys) with what each used in the period (by_key), then keys
   * that were revoked but still have usage in it; usage without a key is summed up below the table. */
  function renderKeys(keys, byKey) {
    const used = {};
    byKey.forEach(function (row) {
      used[row.key === null ? "none" : row.key] = row;
    });
    const zero = { requests: 0, total_tokens: 0, cost: 0 };
    const rows = (keys || []).map(function (key) {
      const usage = used[key.id] || zero;
      delete used[key.id];
      const lastUsed = key.last_used_at ? fromNow(new Date(key.last_used_at)) : "Never";
      return {
        cells: [
          key.name || "(no name)",
          key.prefix,
          key.scopes.length ? key.scopes.join(", ") : "none",
          key.models.length ? key.models.join(", ") : "All models",
          lastUsed,
          integer.format(usage.requests),
          integer.format(usage.total_tokens),
          money(usage.cost),
        ],
      };
    });
    const login = used.none;
    delete used.none;
    Object.keys(used).forEach(function (id) {
      const usage = used[id];
      rows.push({
        className: "usage-gone",
        cells: [(usage.name || "Key #" + id) + " (revoked)", "–", "–", "–", "–", integer.format(usage.requests), integer.format(usage.total_tokens), money(usage.cost)],
      });
    });
    fillRows(document.querySelector("#usage-keys tbody"), rows, [false, false, false, false, false, true, true, true]);
    show("usage-keys-box", rows.length > 0);
    const noKeys = document.getElementById("usage-keys-empty");
    noKeys.hidden = keys === null || keys.length > 0;
    const loginLine = document.getElementById("usage-keys-login");
    loginLine.textContent = login
      ? "Without a key (signed in here, or with a token): " + integer.format(login.requests) + " requests, " +
        integer.format(login.total_tokens) + " tokens, " + money(login.cost) + "."
      : "";
    loginLine.hidden = !login;
  }

  function render(body, keys) {
    renderTotals(body.totals);
    renderLimits(body.limits);
    renderDays(body);
    renderModels(body.by_model);
    renderKeys(keys, body.by_key);
  }

  // --- loading ---------------------------------------------------------------------------------
  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("is-error", Boolean(isError));
  }

  class LoadError extends Error {}

  async function getJson(url, signal) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, signal: signal });
    if (response.status === 401 || response.status === 403) throw new LoadError("Your session has ended: log in again to see your usage.");
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const message = (body && body.error && body.error.message) || response.statusText || "HTTP " + response.status;
      throw new LoadError(message);
    }
    return body;
  }

  async function load() {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const days = Number(spanSelect.value);
    const since = new Date(Date.now() - days * DAY_MS).toISOString();
    try {
      const [usage, keys] = await Promise.all([
        getJson(usageUrl + "?since=" + encodeURIComponent(since), controller.signal),
        // The keys are a part of the page, not all of it: without them the rest still shows.
        getJson(keysUrl, controller.signal).catch(function (error) {
          if (error.name === "AbortError") throw error;
          return null;
        }),
      ]);
      last = { usage: usage, keys: keys };
      render(usage, keys);
      let text = "Last " + days + " days, updated " + new Date().toLocaleTimeString() + ".";
      if (keys === null) text += " Your API keys could not be loaded.";
      if (typeof Chart === "undefined") text += " The chart library did not load: the figures are in the table.";
      setStatus(text, keys === null);
    } catch (error) {
      if (error.name === "AbortError") return;
      setStatus("Could not load your usage: " + error.message, true);
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  document.getElementById("usage-refresh").addEventListener("click", load);
  document.getElementById("usage-controls").addEventListener("submit", function (event) {
    event.preventDefault();
    load();
  });
  spanSelect.addEventListener("change", load);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
    if (chart) {
      chart.destroy();
      chart = null;
    }
    if (last) render(last.usage, last.keys);
  });

  load();
})();
