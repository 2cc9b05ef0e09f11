/* The arena leaderboard page: loads /api/v1/arena/leaderboard with the session cookie and shows the
 * table and a Chart.js chart of each model's rating with its 95 % interval as whiskers.
 *
 * No inline script (the pages run under a strict Content-Security-Policy): the template carries the
 * API's URL as a data-* attribute. Every figure is written with textContent. The whiskers are drawn by
 * a small plugin of this file (no charting library beyond the vendored Chart.js). */
(function () {
  "use strict";

  const root = document.getElementById("arena-leaderboard");
  if (!root) return;
  const statusLine = document.getElementById("arena-status");
  const rating = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function cell(tag, text, className) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function fillTable(rows) {
    const body = document.querySelector("#arena-table tbody");
    body.replaceChildren(
      ...rows.map((row, index) => {
        const tr = document.createElement("tr");
        tr.append(
          cell("td", String(index + 1), "num"),
          cell("th", row.model, "model"),
          cell("td", rating.format(row.rating), "num"),
          cell("td", rating.format(row.ci_low) + " – " + rating.format(row.ci_high), "num"),
          cell("td", rating.format(row.votes), "num"),
        );
        tr.children[1].setAttribute("scope", "row");
        return tr;
      }),
    );
    document.getElementById("arena-table-box").hidden = false;
  }

  /* Whiskers: a vertical line from ci_low to ci_high on each bar, with caps. */
  const whiskers = {
    id: "arenaWhiskers",
    afterDatasetsDraw(chart) {
      const rows = chart.config.options.plugins.arenaWhiskers.rows;
      const meta = chart.getDatasetMeta(0);
      const y = chart.scales.y;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = chart.config.options.plugins.arenaWhiskers.color;
      ctx.lineWidth = 2;
      meta.data.forEach((bar, index) => {
        const row = rows[index];
        const top = y.getPixelForValue(row.ci_high);
        const bottom = y.getPixelForValue(row.ci_low);
        const cap = Math.min(10, bar.width / 4);
        ctx.beginPath();
        ctx.moveTo(bar.x, top);
        ctx.lineTo(bar.x, bottom);
        ctx.moveTo(bar.x - cap, top);
        ctx.lineTo(bar.x + cap, top);
        ctx.moveTo(bar.x - cap, bottom);
        ctx.lineTo(bar.x + cap, bottom);
        ctx.stroke();
      });
      ctx.restore();
    },
  };

  function drawChart(rows) {
    const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    const fg = cssVar("--fg", dark ? "#e6e6e9" : "#1b1b1f");
    const accent = cssVar("--accent", dark ? "#748ffc" : "#3b5bdb");
    Chart.defaults.color = fg;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    const low = Math.min(...rows.map((r) => r.ci_low));
    const high = Math.max(...rows.map((r) => r.ci_high));
    const pad = Math.max(20, (high - low) * 0.1);
    document.getElementById("arena-chart-box").hidden = false;
    new Chart(document.getElementById("arena-chart"), {
      type: "bar",
      data: {
        labels: rows.map((r) => r.model),
        datasets: [{ label: "Rating", data: rows.map((r) => r.rating), backgroundColor: accent + "99", borderColor: accent, borderWidth: 1 }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          y: { min: Math.floor((low - pad) / 10) * 10, max: Math.ceil((high + pad) / 10) * 10, title: { display: true, text: "Rating" } },
          x: { ticks: { autoSkip: false, maxRotation: 45 } },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => {
                const row = rows[item.dataIndex];
                return `${rating.format(row.rating)} (95 %: ${rating.format(row.ci_low)}–${rating.format(row.ci_high)}, ${row.votes} votes)`;
              },
            },
          },
          arenaWhiskers: { rows: rows, color: fg },
        },
      },
      plugins: [whiskers],
    });
  }

  async function load() {
    try {
      const response = await fetch(root.dataset.leaderboardUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`The server answered ${response.status}.`);
      const rows = await response.json();
      if (!rows.length) {
        document.getElementById("arena-empty").hidden = false;
        statusLine.textContent = "";
      } else {
        fillTable(rows);
        drawChart(rows);
        statusLine.textContent = `${rows.length} models ranked.`;
      }
    } catch (error) {
      statusLine.textContent = "Could not load the leaderboard: " + error.message;
      statusLine.classList.add("is-error");
    }
    root.dataset.ready = "true";
  }

  load();
})();
