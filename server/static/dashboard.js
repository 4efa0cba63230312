// The dashboard's behaviour: sign-in (CSRF token kept in the page), launch / cancel / resume,
// live updates from the API's Server-Sent Events, and the charts drawn as SVG. No library:
// every value a user gave is put into the page as text (textContent), never as markup.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (selector, root = document) => root.querySelector(selector);
  const meta = $('meta[name="csrf-token"]');
  // statuses and roles as the server's enums define them (base.html embeds them)
  const VOCABULARY = JSON.parse($("#vocabulary").textContent);
  const DERIVED = VOCABULARY.derived;

  // ---- small helpers ---------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }
  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const number = (value, digits = 4) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
  const integer = (value) => (value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US"));
  function throttle(fn, ms) {
    let timer = null;
    return function () {
      if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms);
    };
  }
  function say(target, text, isError) {
    const node = typeof target === "string" ? document.getElementById(target) : target;
    if (!node) return;
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  async function request(method, url, body, contentType) {
    const headers = { Accept: "application/json" };
    if (meta && meta.content) headers["X-CSRF-Token"] = meta.content;
    if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
    const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      const detail = data && data.detail;
      throw new Error(typeof detail === "string" ? detail : response.status + " " + response.statusText);
    }
    return data;
  }

  // ---- sign-in ---------------------------------------------------------------------------
  function setSignedIn(csrf) {
    if (meta) {
      meta.content = csrf || "";
      meta.dataset.signedIn = csrf === null ? "no" : "yes";
    }
    const form = $("#signin");
    const badge = $("#signed-in");
    if (form) form.hidden = csrf !== null;
    if (badge) badge.hidden = csrf === null;
  }
  function setUpSignIn() {
    const form = $("#signin");
    if (form) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const token = $("#token").value;
        try {
          const answer = await request("POST", "/session", JSON.stringify({ token }));
          $("#token").value = "";
          setSignedIn(answer.csrf_token);
          say("account-message", "");
          if (document.body.dataset.reloadOnSignIn === "yes") location.reload();
        } catch (error) {
          say("account-message", error.message, true);
        }
      });
    }
    const out = $("#signout");
    if (out) {
      out.addEventListener("click", async () => {
        await fetch("/session", { method: "DELETE", credentials: "same-origin" });
        setSignedIn(null);
      });
    }
  }

  // ---- searches: status, progress, actions -----------------------------------------------
  function duration(search) {
    if (!search.started_at) return "";
    const end = search.finished_at ? Date.parse(search.finished_at) : Date.now();
    let seconds = Math.max(0, Math.floor((end - Date.parse(search.started_at)) / 1000));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    seconds %= 60;
    const pad = (n) => String(n).padStart(2, "0");
    return hours ? `${hours}h ${pad(minutes)}m` : `${minutes}m ${pad(seconds)}s`;
  }
  function statusNodes(search) {
    const nodes = [el("span", { class: `status status-${search.status}` }, search.status)];
    if (search.stale) {
      nodes.push(" ", el("span", { class: "badge badge-stale", title: "its runner stopped beating" }, "stale"));
    }
    return nodes;
  }
  function progressNodes(search) {
    if (search.progress === null || search.progress === undefined) {
      return [el("span", { class: "muted" }, `${search.architectures} architectures`)];
    }
    return [el("progress", { max: "1", value: String(search.progress), "aria-label": "progress" },
      `${Math.round(search.progress * 100)}%`), " ",
    el("span", { class: "muted" }, `${search.architectures}/${search.budget.architectures}`)];
  }
  function actionNodes(search) {
    let action = null;
    if (VOCABULARY.active.includes(search.status)) action = "cancel";
    if (VOCABULARY.resumable.includes(search.status)) action = "resume";
    if (!action) return [];
    return [el("button", { type: "button", class: "action", "data-action": action, "data-search": search.id },
      action === "cancel" ? "Cancel" : "Resume")];
  }
  function fill(node, children) {
    if (node) node.replaceChildren(...children);
  }
  function showSearch(search, root) {
    const row = root || document;
    fill($(".status-cell, #search-status", row), statusNodes(search));
    fill($(".progress-cell, #search-progress", row), progressNodes(search));
    const best = $(".best-cell, #search-best", row);
    if (best) best.textContent = number(search.best_reward);
    const time = $(".duration-cell, #search-duration", row);
    if (time) time.textContent = duration(search);
    const actions = $(".actions-cell, #search-actions", row);
    if (actions && (actions.dataset.status !== search.status)) {
      fill(actions, actionNodes(search));
      actions.dataset.status = search.status;
    }
    const error = $("#search-error");
    if (!root && error) {
      error.textContent = search.error || "";
      error.hidden = !search.error;
    }
  }
  function setUpActions() {
    document.addEventListener("click", async (event) => {
      const button = event.target.closest("button.action");
      if (!button) return;
      button.disabled = true;
      const message = $("#action-message") || $("#account-message");
      try {
        const search = await request("POST", `/api/v1/searches/${encodeURIComponent(button.dataset.search)}/${button.dataset.action}`);
        const row = document.querySelector(`tr[data-search="${CSS.escape(search.id)}"]`);
        showSearch(search, row || undefined);
        say(message, `search ${search.id} is ${search.status}`);
      } catch (error) {
        button.disabled = false;
        say(message, error.message, true);
      }
    });
  }

  // ---- the searches page -----------------------------------------------------------------
  function setUpIndex() {
    const table = $("#searches");
    if (!table) return;
    const launch = $("#launch");
    launch.addEventListener("submit", async (event) => {
      event.preventDefault();
      say("launch-message", "launching…");
      try {
        const search = await request("POST", "/dashboard/searches", $("#config").value, "application/yaml");
        say("launch-message", `search ${search.id} queued`);
        location.assign(`/searches/${encodeURIComponent(search.id)}`);
      } catch (error) {
        say("launch-message", error.message, true);
      }
    });
    if (table.dataset.live !== "yes") return;
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const page = await request("GET", "/api/v1/searches?limit=50");
        for (const search of page.items) {
          const row = table.querySelector(`tr[data-search="${CSS.escape(search.id)}"]`);
          if (row) showSearch(search, row);
        }
      } catch (error) { /* the next refresh tries again */ }
    };
    setInterval(refresh, 2000);
  }

  // ---- charts ----------------------------------------------------------------------------
  const WIDTH = 560, HEIGHT = 300, PAD = { left: 62, right: 14, top: 12, bottom: 40 };
  function ticks(min, max, count, whole) {
    const span = max - min || 1;
    const step0 = Math.pow(10, Math.floor(Math.log10(span / count)));
    let step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= count) || step0 * 10;
    if (whole) step = Math.max(1, step);
    const out = [];
    for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) out.push(t);
    return out;
  }
  function short(value) {
    const abs = Math.abs(value);
    if (abs >= 1e9) return (value / 1e9).toPrecision(3) + "G";
    if (abs >= 1e6) return (value / 1e6).toPrecision(3) + "M";
    if (abs >= 1e4) return (value / 1e3).toPrecision(3) + "k";
    return Number(value.toPrecision(4)).toString();
  }
  // series: [{name, className, points: [{x, y, title, id}], line, dots}]
  function chart(container, series, xLabel, yLabel) {
    const all = series.flatMap((s) => s.points);
    const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart-svg", role: "img",
      "aria-label": `${yLabel} by ${xLabel}: ${all.length} points` });
    if (!all.length) {
      root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty" }, "no data yet"));
      container.replaceChildren(root);
      return;
    }
    let [x0, x1] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
    let [y0, y1] = [Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y))];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y0 -= 0.05; y1 += 0.05; }
    const padY = (y1 - y0) * 0.05;
    y0 -= padY; y1 += padY;
    const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
    const sy = (y) => HEIGHT - PAD.bottom - ((y - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
    const axes = svg("g", { class: "axes" });
    for (const t of ticks(x0, x1, 6, xLabel === "step" || xLabel === "epoch")) {
      axes.append(svg("line", { x1: sx(t), x2: sx(t), y1: PAD.top, y2: HEIGHT - PAD.bottom, class: "grid" }));
      axes.append(svg("text", { x: sx(t), y: HEIGHT - PAD.bottom + 14, "text-anchor": "middle" }, short(t)));
    }
    for (const t of ticks(y0, y1, 5)) {
      axes.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: sy(t), y2: sy(t), class: "grid" }));
      axes.append(svg("text", { x: PAD.left - 6, y: sy(t) + 4, "text-anchor": "end" }, short(t)));
    }
    axes.append(svg("text", { x: (PAD.left + WIDTH - PAD.right) / 2, y: HEIGHT - 6, "text-anchor": "middle", class: "label" }, xLabel));
    axes.append(svg("text", { x: 14, y: (PAD.top + HEIGHT - PAD.bottom) / 2, "text-anchor": "middle", class: "label",
      transform: `rotate(-90 14 ${(PAD.top + HEIGHT - PAD.bottom) / 2})` }, yLabel));
    root.append(axes);
    for (const s of series) {
      const group = svg("g", { class: `series ${s.className}`, "data-series": s.name });
      if (s.line && s.points.length) {
        const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
        group.append(svg("path", { d, class: "line" }));
      }
      if (s.dots) {
        for (const p of s.points) {
          const dot = svg(s.shape === "diamond" ? "rect" : "circle", s.shape === "diamond"
            ? { x: sx(p.x) - 4, y: sy(p.y) - 4, width: 8, height: 8, transform: `rotate(45 ${sx(p.x)} ${sy(p.y)})`, class: "pt", "data-id": p.id }
            : { cx: sx(p.x), cy: sy(p.y), r: s.radius || 3, class: "pt", "data-id": p.id });
          if (p.title) dot.append(svg("title", {}, p.title));
          group.append(dot);
        }
      }
      root.append(group);
    }
    root.addEventListener("click", (event) => {
      const id = event.target.getAttribute && event.target.getAttribute("data-id");
      if (id) location.assign(`/architectures/${encodeURIComponent(id)}`);
    });
    container.replaceChildren(root);
  }

  function pareto(points) {
    // fewest parameters (or multiply-adds) for the accuracy: sorted by x, rising accuracy
    const sorted = [...points].sort((a, b) => a.x - b.x || b.y - a.y);
    const front = [];
    for (const p of sorted) if (!front.length || p.y > front[front.length - 1].y) front.push(p);
    return front;
  }

  function drawSearchCharts(points) {
    // zoo baselines (`nas baselines`) are not the search's progress: they have their own table
    const rows = [...points.values()].filter((r) => r.role !== VOCABULARY.zoo)
      .sort((a, b) => a.step - b.step || a.id - b.id);
    const scored = rows.filter((r) => r.state === VOCABULARY.complete && r.reward !== null);
    const label = (r) => `architecture ${r.id} (${r.role}), step ${r.step}: reward ${number(r.reward)}, accuracy ${number(r.accuracy)}`;
    const asPoint = (key) => (r) => ({ x: r[key], y: key === "step" ? r.reward : r.accuracy, id: r.id, title: label(r) });
    let best = -Infinity;
    const running = [];
    for (const r of scored) {
      if (r.reward > best) {
        if (running.length) running.push({ x: r.step, y: best });
        best = r.reward;
        running.push({ x: r.step, y: best });
      }
    }
    if (running.length && scored.length) running.push({ x: scored[scored.length - 1].step, y: best });
    const candidates = scored.filter((r) => r.role !== DERIVED);
    const average = [];
    let ema = null;
    for (const r of candidates) {
      ema = ema === null ? r.reward : 0.9 * ema + 0.1 * r.reward;
      average.push({ x: r.step, y: ema });
    }
    const reward = $("#chart-reward");
    if (reward) {
      chart(reward, [
        { name: "candidate", className: "candidate", points: candidates.map(asPoint("step")), dots: true },
        { name: "average", className: "average", points: average, line: true },
        { name: "best", className: "best", points: running, line: true },
        { name: "derived", className: "derived", points: scored.filter((r) => r.role === DERIVED).map(asPoint("step")), dots: true, shape: "diamond" },
      ], "step", "reward");
    }
    for (const [id, key, name] of [["#chart-params", "params", "parameters"], ["#chart-flops", "flops", "multiply-adds"]]) {
      const node = $(id);
      if (!node) continue;
      const usable = scored.filter((r) => r.accuracy !== null && r[key] !== null);
      // the front of the sampled candidates; derived ones are scored otherwise (full split)
      const front = pareto(usable.filter((r) => r.role !== DERIVED).map(asPoint(key)));
      chart(node, [
        { name: "candidate", className: "candidate", points: usable.filter((r) => r.role !== DERIVED).map(asPoint(key)), dots: true },
        { name: "derived", className: "derived", points: usable.filter((r) => r.role === DERIVED).map(asPoint(key)), dots: true, shape: "diamond" },
        { name: "pareto", className: "pareto", points: front, line: true, dots: true, radius: 5 },
      ], name, "accuracy");
    }
  }

  // ---- the search page: table and charts, live -------------------------------------------
  function architectureRow(r) {
    const role = r.role === DERIVED
      ? el("span", { class: "badge badge-derived", title: "re-scored on the full validation split" }, "derived · full split")
      : r.role;
    return el("tr", { class: `role-${r.role} state-${r.state}` },
      el("td", {}, el("a", { href: `/architectures/${r.id}` }, String(r.id))),
      el("td", { class: "num" }, String(r.step)), el("td", {}, role), el("td", {}, r.state),
      el("td", { class: "num" }, number(r.reward)), el("td", { class: "num" }, number(r.accuracy)),
      el("td", { class: "num" }, integer(r.params)), el("td", { class: "num" }, integer(r.flops)),
      el("td", { class: "num" }, number(r.latency_ms, 2)), el("td", { class: "num" }, number(r.train_seconds, 1)));
  }

  function setUpSearch() {
    const box = $("#search");
    if (!box) return;
    const searchId = box.dataset.search;
    const points = new Map(JSON.parse($("#points").textContent).map((p) => [p.id, p]));
    const table = $("#architectures");
    const draw = throttle(() => {
      drawSearchCharts(points);
      const count = $("#architecture-count");
      if (count) count.textContent = `(${points.size})`;
    }, 250);
    const refreshTable = throttle(async () => {
      if (table.dataset.live !== "yes") return;
      const query = new URLSearchParams({ sort: table.dataset.sort, order: table.dataset.order, limit: table.dataset.limit });
      if (table.dataset.role) query.set("role", table.dataset.role);
      try {
        const page = await request("GET", `/api/v1/searches/${encodeURIComponent(searchId)}/architectures?${query}`);
        table.tBodies[0].replaceChildren(...page.items.map(architectureRow));
      } catch (error) { /* the next event tries again */ }
    }, 1000);
    const refreshSummary = throttle(async () => {
      try {
        showSearch(await request("GET", `/api/v1/searches/${encodeURIComponent(searchId)}`));
      } catch (error) { /* the next event tries again */ }
    }, 1000);
    draw();
    if (!window.EventSource) return;
    const events = new EventSource(`/api/v1/searches/${encodeURIComponent(searchId)}/events`);
    events.addEventListener("architecture", (event) => {
      const row = JSON.parse(event.data).data;
      if (!row || row.id === undefined) return;
      points.set(row.id, row);
      draw();
      refreshTable();
      refreshSummary();
    });
    events.addEventListener("status", () => refreshSummary());
    events.addEventListener("end", () => {
      events.close();
      refreshSummary();
      refreshTable();
    });
  }

  // ---- the architecture page: per-epoch curves -------------------------------------------
  function setUpArchitecture() {
    const data = $("#history");
    if (!data) return;
    const history = JSON.parse(data.textContent);
    const line = (key) => history.filter((e) => typeof e[key] === "number").map((e) => ({ x: e.epoch, y: e[key], title: `epoch ${e.epoch}: ${key} ${number(e[key])}` }));
    const loss = $("#chart-loss");
    if (loss) {
      chart(loss, [
        { name: "train", className: "train", points: line("train_loss"), line: true, dots: true },
        { name: "validation", className: "validation", points: line("val_loss"), line: true, dots: true },
      ], "epoch", "loss");
    }
    const accuracy = $("#chart-accuracy");
    if (accuracy) {
      chart(accuracy, [
        { name: "train", className: "train", points: line("train_accuracy"), line: true, dots: true },
        { name: "validation", className: "validation", points: line("val_accuracy"), line: true, dots: true },
      ], "epoch", "accuracy");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpSignIn();
    setUpActions();
    setUpIndex();
    setUpSearch();
    setUpArchitecture();
  });
})();
