/* The evaluation pages (staff): the list with a form that starts an evaluation, and one evaluation:
 * its progress while it runs (polling the API), Chart.js bars per model (accuracy, eval loss and
 * perplexity, the judge's wins/ties/losses), the answers question by question, and promotion:
 * promote the evaluated model with a reason, roll back, the current default and the history.
 *
 * No inline script (the Content-Security-Policy forbids it): the templates carry data-* attributes.
 * Every figure and answer is written with textContent, never as HTML. */
(function () {
  "use strict";

  const POLL_MS = 1500;
  const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function api(url, options) {
    const init = Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, options || {});
    if (init.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrfToken();
      init.body = JSON.stringify(init.body);
    }
    const response = await fetch(url, init);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = body.error || {};
      throw new Error((error.field ? error.field + ": " : "") + (error.message || "HTTP " + response.status));
    }
    return body;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fixed(value) {
    return typeof value === "number" ? number.format(value) : "–";
  }

  function share(value) {
    return typeof value === "number" ? percent.format(value) : "–";
  }

  function say(element, text, isError) {
    element.textContent = text;
    element.classList.toggle("is-error", Boolean(isError));
  }

  // --- the list page ---------------------------------------------------------------------------
  function listPage(root) {
    const status = document.getElementById("evaluation-status");
    const form = document.getElementById("evaluation-form");
    const modelSelect = document.getElementById("evaluation-model");
    const againstSelect = document.getElementById("evaluation-against");
    const tbody = document.querySelector("#evaluation-list tbody");
    const empty = document.getElementById("evaluation-list-empty");

    async function loadModels() {
      const body = await api(root.dataset.modelsUrl);
      for (const model of body.data || []) {
        for (const select of [modelSelect, againstSelect]) {
          const option = document.createElement("option");
          option.value = option.textContent = model.id;
          select.appendChild(option);
        }
      }
    }

    async function loadList() {
      const body = await api(root.dataset.apiUrl + "?limit=50");
      tbody.replaceChildren();
      for (const row of body.results) {
        const tr = document.createElement("tr");
        const link = document.createElement("a");
        link.href = root.dataset.pageUrl + row.id + "/";
        link.textContent = "#" + row.id;
        cell(tr, "").replaceChildren(link);
        cell(tr, row.model);
        cell(tr, row.baseline || "–");
        cell(tr, row.status + (row.status === "running" && row.total ? " " + row.done + "/" + row.total : ""));
        const mine = (row.metrics.models || {})[row.model] || {};
        cell(tr, share(mine.accuracy), "num");
        cell(tr, fixed(mine.eval_loss), "num");
        cell(tr, row.created_by || row.source);
        cell(tr, when.format(new Date(row.created_at)));
        tbody.appendChild(tr);
      }
      empty.hidden = body.results.length > 0;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { model: modelSelect.value, limit: Number(document.getElementById("evaluation-limit").value) };
      if (againstSelect.value) body.against = againstSelect.value;
      say(status, "Starting…");
      try {
        const created = await api(root.dataset.apiUrl, { method: "POST", body: body });
        window.location.href = root.dataset.pageUrl + created.id + "/";
      } catch (error) {
        say(status, error.message, true);
      }
    });

    Promise.all([loadModels(), loadList()]).catch((error) => say(status, error.message, true));
  }

  // --- one evaluation --------------------------------------------------------------------------
  function theme() {
    const css = getComputedStyle(document.documentElement);
    const pick = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    return { fg: pick("--fg", "#1b1b1f"), muted: pick("--muted", "#666"), accent: pick("--accent", "#3b5bdb") };
  }

  const SERIES = ["#3b5bdb", "#f08c00", "#2b8a3e", "#c92a2a"];

  function detailPage(root) {
    const status = document.getElementById("evaluation-status");
    const progress = document.getElementById("evaluation-progress");
    const errorLine = document.getElementById("evaluation-error");
    const promotionStatus = document.getElementById("promotion-status");
    const charts = {};
    let timer = null;

    function chart(id, labels, datasets, options) {
      if (typeof Chart === "undefined") return;
      const colours = theme();
      Chart.defaults.color = colours.fg;
      const config = {
        type: "bar",
        data: { labels: labels, datasets: datasets },
        options: Object.assign(
          { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: datasets.length > 1 } } },
          options || {}
        ),
      };
      if (charts[id]) charts[id].destroy();
      charts[id] = new Chart(document.getElementById(id), config);
    }

    function renderFigures(evaluation) {
      const models = [evaluation.model].concat(evaluation.baseline ? [evaluation.baseline] : []);
      const figures = evaluation.metrics.models || {};
      const tbody = document.querySelector("#evaluation-figures tbody");
      tbody.replaceChildren();
      for (const model of models) {
        const f = figures[model] || {};
        const tr = document.createElement("tr");
        cell(tr, model);
        cell(tr, share(f.accuracy), "num");
        cell(tr, f.questions !== undefined ? f.correct + "/" + f.questions : "–", "num");
        cell(tr, fixed(f.eval_loss), "num");
        cell(tr, fixed(f.perplexity), "num");
        cell(tr, f.loss_note || (f.qa_errors ? f.qa_errors + " answers failed" : ""));
        tbody.appendChild(tr);
      }
      chart("chart-accuracy", models, [
        { label: "accuracy", data: models.map((m) => (figures[m] || {}).accuracy || 0), backgroundColor: SERIES.slice(0, models.length) },
      ], { scales: { y: { min: 0, max: 1 } } });
      chart("chart-loss", models, [
        { label: "eval loss", data: models.map((m) => (figures[m] || {}).eval_loss ?? null), backgroundColor: SERIES[0] },
        { label: "perplexity", data: models.map((m) => (figures[m] || {}).perplexity ?? null), backgroundColor: SERIES[1], yAxisID: "y2" },
      ], { scales: { y: { beginAtZero: true, title: { display: true, text: "loss" } }, y2: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "perplexity" } } } });
      const judge = evaluation.metrics.judge;
      document.getElementById("chart-judge-box").hidden = !judge;
      const summary = document.getElementById("evaluation-judge-summary");
      summary.hidden = !judge;
      if (judge) {
        chart("chart-judge", ["wins", "ties", "losses"], [
          { label: evaluation.model, data: [judge.wins, judge.ties, judge.losses], backgroundColor: [SERIES[2], SERIES[1], SERIES[3]] },
        ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
        summary.textContent = "Judge " + judge.model + ": " + evaluation.model + " wins " + judge.wins + ", ties " + judge.ties +
          ", loses " + judge.losses + " of " + judge.judged + " (win rate " + share(judge.win_rate) + "). A win counts only when both orders agree.";
      }
    }

    function renderExamples(evaluation) {
      const models = [evaluation.model].concat(evaluation.baseline ? [evaluation.baseline] : []);
      const head = document.querySelector("#evaluation-examples thead tr");
      const headers = ["Question", "Accepted"].concat(...models.map((m) => [m, "✓/✗"]));
      if (evaluation.judge) headers.push("Judge");
      head.replaceChildren(...headers.map((text) => {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = text;
        return th;
      }));
      const byIndex = new Map();
      for (const row of evaluation.examples.results) {
        if (row.kind === "loss") continue;
        const entry = byIndex.get(row.index) || { answers: {} };
        if (row.kind === "qa") {
          entry.prompt = row.prompt;
          entry.expected = row.expected;
          entry.answers[row.model] = row;
        } else {
          entry.judge = row.verdicts.outcome;
        }
        byIndex.set(row.index, entry);
      }
      const tbody = document.querySelector("#evaluation-examples tbody");
      tbody.replaceChildren();
      for (const index of [...byIndex.keys()].sort((a, b) => a - b)) {
        const entry = byIndex.get(index);
        const tr = document.createElement("tr");
        cell(tr, entry.prompt);
        cell(tr, (entry.expected || []).join(" · "));
        for (const model of models) {
          const answer = entry.answers[model];
          cell(tr, answer ? answer.answer || answer.error || "(empty)" : "…", "answer");
          const mark = answer ? (answer.correct ? "✓" : "✗") : "";
          cell(tr, mark, answer ? (answer.correct ? "mark-yes" : "mark-no") : "");
        }
        if (evaluation.judge) cell(tr, entry.judge === "model" ? evaluation.model : entry.judge === "baseline" ? evaluation.baseline : entry.judge || "…");
        tbody.appendChild(tr);
      }
    }

    async function load() {
      try {
        const evaluation = await api(root.dataset.apiUrl + "?kind=qa&limit=1000");
        const judged = evaluation.judge ? await api(root.dataset.apiUrl + "?kind=judge&limit=1000") : null;
        if (judged) evaluation.examples.results = evaluation.examples.results.concat(judged.examples.results);
        const running = evaluation.status === "queued" || evaluation.status === "running";
        say(status, running ? evaluation.status + (evaluation.total ? ": " + evaluation.done + " of " + evaluation.total + " steps" : "…") : evaluation.status);
        root.dataset.status = evaluation.status;
        progress.hidden = !running;
        progress.value = evaluation.progress || 0;
        errorLine.hidden = !evaluation.error || evaluation.status === "succeeded";
        errorLine.textContent = evaluation.error;
        renderFigures(evaluation);
        renderExamples(evaluation);
        clearTimeout(timer);
        if (running) timer = setTimeout(load, POLL_MS);
      } catch (error) {
        say(status, error.message, true);
        timer = setTimeout(load, POLL_MS * 4);
      }
    }

    async function loadPromotions() {
      const body = await api(root.dataset.promotionsUrl + "?limit=20");
      document.getElementById("evaluation-default").textContent = body.default.id;
      document.getElementById("promote-button").disabled = body.default.id === root.dataset.model;
      document.getElementById("rollback-button").disabled = !body.rollback_to;
      document.getElementById("rollback-to").textContent = body.rollback_to ? "to " + body.rollback_to.model : "nothing to roll back";
      const tbody = document.querySelector("#promotion-history tbody");
      tbody.replaceChildren();
      for (const row of body.results) {
        const tr = document.createElement("tr");
        cell(tr, when.format(new Date(row.created_at)));
        cell(tr, row.kind);
        cell(tr, row.model);
        cell(tr, row.previous.model);
        cell(tr, row.user);
        cell(tr, row.reason);
        tbody.appendChild(tr);
      }
    }

    async function change(url, body, done) {
      say(promotionStatus, "Switching the default model…");
      try {
        const row = await api(url, { method: "POST", body: body });
        say(promotionStatus, done + " " + row.model + ".");
      } catch (error) {
        say(promotionStatus, error.message, true);
      }
      await loadPromotions().catch((error) => say(promotionStatus, error.message, true));
    }

    document.getElementById("promote-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = document.getElementById("promote-reason").value;
      change(root.dataset.promoteUrl, { reason: reason, evaluation: Number(root.dataset.evaluation) }, "Promoted");
    });
    document.getElementById("rollback-form").addEventListener("submit", (event) => {
      event.preventDefault();
      change(root.dataset.rollbackUrl, { reason: "rolled back from evaluation #" + root.dataset.evaluation }, "Rolled back to");
    });

    load();
    loadPromotions().catch((error) => say(promotionStatus, error.message, true));
  }

  const list = document.getElementById("evaluations");
  if (list) listPage(list);
  const one = document.getElementById("evaluation");
  if (one) detailPage(one);
})();
