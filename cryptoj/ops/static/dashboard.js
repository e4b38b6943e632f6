// cryptoj live dashboard: polls this daemon's ops endpoint and draws the page (no libraries).
//
// The token (when the daemon has one) is pasted by the operator, kept in sessionStorage (this
// tab only) and sent as "Authorization: Bearer ..." like any other client; the page holds none.
"use strict";

(function () {
  const POLL_MS = 2000;
  const TOKEN_KEY = "cryptoj-ops-token";
  const ARM_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let timer = null;
  let armed = null; // the flatten button's timer while it waits for the second click
  let lastSeries = null;

  // -- formatting ---------------------------------------------------------------------------

  function groups(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function money(x, places) {
    const n = Number(x);
    if (!isFinite(n)) return "–";
    const p = places === undefined ? 2 : places;
    const [whole, frac] = Math.abs(n).toFixed(p).split(".");
    return (n < 0 ? "−" : "") + groups(whole) + (frac ? "." + frac : "");
  }

  function qty(x) {
    const n = Number(x);
    if (!isFinite(n)) return "–";
    return n.toFixed(8).replace(/0+$/, "").replace(/\.$/, "");
  }

  function pct(x, places) {
    const n = Number(x);
    if (!isFinite(n)) return "–";
    const text = Math.abs(n * 100).toFixed(places === undefined ? 2 : places);
    return (n < 0 && Number(text) !== 0 ? "−" : "") + text + "%";
  }

  function marketTime(ns, withSeconds) {
    if (ns === null || ns === undefined) return "–";
    const iso = new Date(Number(ns) / 1e6).toISOString();
    return iso.slice(0, withSeconds ? 19 : 16).replace("T", " ");
  }

  function wallTime(seconds) {
    const d = new Date(Number(seconds) * 1000);
    return d.toLocaleTimeString([], { hour12: false });
  }

  function duration(s) {
    s = Math.max(0, Math.round(Number(s) || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
  }

  // -- DOM helpers (text only: nothing from the daemon is parsed as HTML) -------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") node.className = v;
      else if (k === "title") node.title = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function setText(id, text, cls) {
    const node = $(id);
    node.textContent = text;
    if (cls !== undefined) node.className = cls;
  }

  // columns: [header, (row) => value, class?]
  function table(id, columns, rows, empty, rowClass) {
    const box = $(id);
    box.replaceChildren();
    if (!rows || rows.length === 0) {
      box.append(el("div", { class: "none" }, empty));
      return;
    }
    const head = el("tr", {}, ...columns.map((c) => el("th", { class: c[2] || "" }, c[0])));
    const body = rows.map((r) =>
      el(
        "tr",
        { class: rowClass ? rowClass(r) : "" },
        ...columns.map((c) => {
          const v = c[1](r);
          const cell = el("td", { class: c[2] || "" }, v);
          if (c[2] && c[2].includes("clip")) cell.title = String(v);
          return cell;
        })
      )
    );
    box.append(el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body))));
  }

  // -- requests ---------------------------------------------------------------------------

  async function api(path, options) {
    const opts = options || {};
    const headers = Object.assign({}, opts.headers || {});
    if (token) headers["Authorization"] = "Bearer " + token;
    const resp = await fetch(path, {
      method: opts.method || "GET",
      headers,
      body: opts.body,
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = { error: `HTTP ${resp.status} (not JSON)` };
    }
    return { status: resp.status, body };
  }

  function needToken(wrong) {
    $("token-bar").hidden = false;
    setText(
      "token-label",
      wrong
        ? "The token was refused (401). Paste this daemon's ops token:"
        : "This daemon needs its ops token (kept in this tab only):"
    );
    setText("conn", "token needed", "conn bad");
    setControls(null, "control needs the ops token: paste it above");
  }

  // -- one refresh --------------------------------------------------------------------------

  async function refresh() {
    clearTimeout(timer);
    try {
      const [status, series, ctl] = await Promise.all([
        api("/status"),
        api("/dashboard/equity"),
        api("/dashboard/control"),
      ]);
      if (status.status === 401 || series.status === 401 || ctl.status === 401) {
        needToken(Boolean(token));
      } else if (status.status !== 200) {
        setText("conn", `status: HTTP ${status.status} ${status.body.error || ""}`, "conn bad");
      } else {
        $("token-bar").hidden = true;
        if (series.status === 200) lastSeries = series.body;
        render(status.body, lastSeries);
        setControls(ctl.status === 200 ? ctl.body : null);
        setText("conn", "live · " + new Date().toLocaleTimeString([], { hour12: false }), "conn ok");
      }
    } catch (e) {
      setText("conn", "no answer from the daemon", "conn bad");
      setControls(null);
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  function render(s, series) {
    // header
    const mode = $("mode");
    mode.textContent = s.mode;
    mode.className = "pill" + (s.mode === "live" ? " live" : "");
    setText("market", `market ${marketTime(s.market_time_ns)} UTC · ${s.speed ? s.speed + "×" : "live pace"}`);
    setText("uptime", `pid ${s.pid} · up ${duration(s.uptime_s)}`);

    // equity
    const pf = s.portfolio;
    const jeq = s.journal && s.journal.equity;
    const equity = pf ? pf.equity : jeq ? String(jeq.equity) : null;
    const eqNode = $("equity");
    eqNode.textContent = equity === null ? "–" : money(equity);
    eqNode.dataset.value = equity === null ? "" : equity;
    setText(
      "equity-sub",
      pf
        ? `cash ${money(pf.cash)} · reserved ${money(pf.reserved_cash)}${pf.halted ? " · halted" : ""}`
        : jeq
          ? `from the journal at ${marketTime(jeq.ts)}`
          : "no equity yet"
    );

    // drawdown
    const pts = series && series.points ? series.points : [];
    const last = pts.length ? pts[pts.length - 1] : null;
    setText("drawdown", last ? pct(last[3]) : "–", "big" + (last && last[3] > 0 ? " neg" : ""));
    const day = (s.journal && s.journal.day) || {};
    const parts = [];
    if (series && series.points.length) parts.push(`max ${pct(series.max_drawdown)}`);
    if (last) parts.push(`peak ${money(last[2], 0)}`);
    if (day.daily_loss !== undefined) parts.push(`today ${pct(-day.daily_loss)}`);
    setText("drawdown-sub", parts.join(" · "));

    // risk
    const risk = s.risk || {};
    setText("risk-level", risk.level || "–", "big level " + (risk.level || ""));
    const snap = risk.snapshot || {};
    const rparts = [];
    if (snap.entries_allowed === false) rparts.push("entries blocked");
    if (snap.drawdown_halted) rparts.push("drawdown halt");
    if (snap.high_water_mark) rparts.push(`HWM ${money(snap.high_water_mark, 0)}`);
    rparts.push(risk.source || "");
    setText("risk-sub", rparts.filter(Boolean).join(" · "));

    // programme (the ShutdownActor's response level)
    const prog = s.programme || {};
    const ps = prog.snapshot;
    setText("programme-level", prog.level || "–", "big level " + (prog.level || ""));
    setText(
      "programme-sub",
      ps
        ? [
            ps.trigger ? "by " + ps.trigger : "",
            ps.held ? "held until resume" : ps.blocked_by,
            ps.stopping ? "stopping" : "",
          ].filter(Boolean).join(" · ") || "no emergency"
        : "the ShutdownActor did not answer"
    );

    // feed
    const feed = s.feed || {};
    setText("feed-state", feed.state || "–", "big level " + (feed.state || ""));
    const age = feed.last_event_age_s;
    setText(
      "feed-sub",
      `${feed.source || ""} · ${feed.messages || 0} msgs` +
        (age !== null && age !== undefined ? ` · last event ${age.toFixed(0)} s ago (market time)` : "") +
        (feed.reconnects ? ` · ${feed.reconnects} reconnects` : "") +
        (feed.gaps ? ` · ${feed.gaps} gaps` : "")
    );

    drawChart(series);

    // positions
    table(
      "positions",
      [
        ["Product", (p) => p.product],
        ["Quantity", (p) => qty(p.quantity), "num"],
        ["Avg price", (p) => money(p.average_price), "num"],
        ["Mark", (p) => money(p.mark_price), "num"],
        ["Value", (p) => money(p.value), "num"],
        ["Weight", (p) => pct(p.weight), "num"],
      ],
      pf ? pf.positions : [],
      pf ? "no positions" : "the PortfolioActor did not answer"
    );

    const orderCols = (withUpdated) => [
      ["Order", (o) => o.client_order_id, "clip"],
      ["Product", (o) => o.product],
      ["Side", (o) => o.side],
      ["Type", (o) => o.order_type],
      ["Qty", (o) => qty(o.quantity), "num"],
      ["Filled", (o) => qty(o.filled_quantity), "num"],
      ["Status", (o) => o.status],
      [withUpdated ? "Updated (market)" : "Created (market)", (o) => marketTime(withUpdated ? o.updated_ts : o.created_ts, true), "time"],
      ["Reason", (o) => o.reason, "clip"],
    ];
    table("open-orders", orderCols(false), s.open_orders, "no open orders");
    table("recent-orders", orderCols(true), s.recent_orders, "no orders yet");
    const counts = (s.journal && s.journal.orders) || {};
    setText(
      "order-counts",
      Object.keys(counts).length
        ? "journal: " + Object.entries(counts).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(", ") + " (child orders included)"
        : ""
    );

    const eventCols = [
      ["Market time", (e) => marketTime(e.ts, true), "time"],
      ["Kind", (e) => e.kind],
      ["Detail", (e) => e.detail, "wrap"],
    ];
    table("risk-history", eventCols, (risk.recent_events || []).slice().reverse(), "no risk level change yet");
    table("programme-history", eventCols, (prog.recent_events || []).slice().reverse(), "no response level change yet");

    // actor tree
    const rt = s.runtime || {};
    setText(
      "runtime-note",
      `${rt.delivered || 0} delivered · ${rt.restarts || 0} restarts · ${rt.crashes || 0} crashes · ${rt.dead_letters || 0} dead letters`
    );
    table(
      "actors",
      [
        ["Actor", (a) => el("span", { class: "tree" }, "  ".repeat(a.depth) + (a.depth ? "└ " : ""), el("span", { class: "dot" + (a.alive ? "" : " off") }), a.name)],
        ["Restarts", (a) => a.restarts, "num"],
        ["Mailbox", (a) => a.mailbox, "num"],
        ["Messages", (a) => a.messages, "num"],
        ["Last exit", (a) => a.last_exit || "", "clip"],
      ],
      s.actors,
      "no actors",
      (a) => (a.alive ? "" : "dead")
    );

    // guarded daemon threads
    table(
      "threads",
      [
        ["Thread", (t) => el("span", {}, el("span", { class: "dot" + (t.state === "running" ? "" : t.state === "dead" ? " off" : " warn") }), t.name)],
        ["Component", (t) => t.component],
        ["State", (t) => t.state],
        ["Crashes", (t) => t.crashes, "num"],
        ["Restarts", (t) => t.restarts, "num"],
        ["Beat", (t) => (t.last_beat_age_s === null ? "–" : t.last_beat_age_s.toFixed(1) + " s"), "num"],
        ["Last error", (t) => t.last_error || "", "clip"],
      ],
      s.threads,
      "no guarded threads",
      (t) => (t.state === "dead" ? "dead" : "")
    );
    table(
      "feed-history",
      [
        ["Time", (e) => wallTime(e.wall)],
        ["Event", (e) => e.event],
        ["Detail", (e) => e.detail, "clip"],
      ],
      (feed.history || []).slice(-5).reverse(),
      "no feed events"
    );

    table(
      "errors",
      [
        ["Time", (e) => wallTime(e.wall)],
        ["Source", (e) => e.source],
        ["Message", (e) => e.message, "wrap"],
      ],
      (s.errors || []).slice(-10).reverse(),
      "no warnings or errors"
    );
  }

  // -- the chart (inline SVG) ----------------------------------------------------------------

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  function timeLabel(ns, spanNs) {
    const iso = new Date(ns / 1e6).toISOString();
    if (spanNs > 5 * 86400e9) return iso.slice(0, 10);
    if (spanNs > 86400e9) return iso.slice(5, 16).replace("T", " ");
    if (spanNs > 1800e9) return iso.slice(11, 16);
    return iso.slice(11, 19);
  }

  function drawChart(series) {
    const box = $("chart");
    const pts = series && series.points ? series.points : [];
    setText(
      "chart-note",
      pts.length
        ? `${series.marks} marks, market time ${marketTime(series.first)} → ${marketTime(series.last)} UTC`
        : ""
    );
    if (!pts.length) {
      box.replaceChildren(el("div", { class: "empty" }, "no equity marks in the journal yet"));
      return;
    }
    const W = Math.max(320, box.clientWidth || 800);
    const H = 316;
    const L = 78, R = 14, T = 26, EQ_H = 190, GAP = 22, DD_H = 56;
    const plotW = W - L - R;
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    const tspan = Math.max(1, t1 - t0);
    const x = (t) => L + (pts.length === 1 ? plotW / 2 : ((t - t0) / tspan) * plotW);

    let lo = Math.min(...pts.map((p) => p[4]));
    let hi = Math.max(...pts.map((p) => p[2]));
    const least = Math.max(1, Math.abs(hi) * 0.002); // a flat line: show ±0.1% around it
    if (hi - lo < least) { const mid = (hi + lo) / 2; lo = mid - least / 2; hi = mid + least / 2; }
    const pad = (hi - lo) * 0.06;
    lo -= pad; hi += pad;
    const y = (v) => T + EQ_H - ((v - lo) / (hi - lo)) * EQ_H;

    const maxDD = Math.max(0.001, ...pts.map((p) => p[5]));
    const ddTop = T + EQ_H + GAP;
    const yd = (d) => ddTop + (d / maxDD) * DD_H;

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "equity and drawdown" });

    // equity grid and axis
    const ticks = niceTicks(lo, hi, 5);
    const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
    const places = step >= 1 ? 0 : Math.min(2, Math.ceil(-Math.log10(step)));
    for (const v of ticks) {
      root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, money(v, places)));
    }
    root.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: T + EQ_H }));
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: T + EQ_H, y2: T + EQ_H }));

    const line = (idx, yy) => pts.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + yy(p[idx]).toFixed(1)).join(" ");
    root.append(svg("path", { class: "peak", d: line(2, y) }));
    root.append(svg("path", { class: "equity", d: line(1, y) }));
    const lp = pts[pts.length - 1];
    root.append(svg("circle", { class: "last", cx: x(lp[0]), cy: y(lp[1]), r: 3 }));

    // drawdown panel (worst drawdown of each span, downward from 0)
    root.append(svg("text", { x: L - 6, y: ddTop + 4, "text-anchor": "end" }, "0%"));
    root.append(svg("text", { x: L - 6, y: ddTop + DD_H + 4, "text-anchor": "end" }, pct(-maxDD, 1)));
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: ddTop, y2: ddTop }));
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: ddTop + DD_H, y2: ddTop + DD_H }));
    const area =
      `M${x(t0).toFixed(1)} ${ddTop} ` +
      pts.map((p) => `L${x(p[0]).toFixed(1)} ${yd(p[5]).toFixed(1)}`).join(" ") +
      ` L${x(t1).toFixed(1)} ${ddTop} Z`;
    root.append(svg("path", { class: "dd", d: area }));

    // time axis
    const n = Math.min(6, Math.max(2, Math.floor(plotW / 130)));
    for (let i = 0; i <= n; i++) {
      const t = t0 + (tspan * i) / n;
      const anchor = i === 0 ? "start" : i === n ? "end" : "middle";
      root.append(svg("text", { x: x(t), y: H - 4, "text-anchor": anchor }, timeLabel(t, tspan)));
    }
    // legend, above the plot
    root.append(svg("line", { class: "equity", x1: L, x2: L + 22, y1: 9, y2: 9 }));
    root.append(svg("text", { x: L + 28, y: 13 }, `equity (last ${money(lp[1])})`));
    root.append(svg("line", { class: "peak", x1: L + 190, x2: L + 212, y1: 9, y2: 9 }));
    root.append(svg("text", { x: L + 218, y: 13 }, "running peak"));
    root.append(svg("rect", { class: "dd", x: L + 310, y: 4, width: 14, height: 10 }));
    root.append(svg("text", { x: L + 330, y: 13 }, "drawdown from the peak (lower panel)"));
    box.replaceChildren(root);
  }

  // -- emergency buttons ------------------------------------------------------------------

  function setControls(info, why) {
    const ok = Boolean(info && info.allowed);
    for (const b of document.querySelectorAll("button.cmd")) b.disabled = !ok;
    if (!info) {
      setText("control-note", why || "control unavailable: no answer from the daemon", "muted");
    } else if (!info.allowed) {
      setText("control-note", "control refused: " + info.detail, "muted neg");
    } else {
      setText("control-note", "control allowed " + info.detail, "muted");
    }
  }

  function disarm() {
    clearTimeout(armed);
    armed = null;
    const b = $("btn-flatten");
    b.classList.remove("armed");
    b.textContent = "Flatten";
  }

  async function command(name) {
    if (name === "flatten" && armed === null) {
      const b = $("btn-flatten");
      b.classList.add("armed");
      b.textContent = "Confirm flatten";
      armed = setTimeout(disarm, ARM_MS);
      setText("control-result", "click again within 5 s to flatten every position", "result bad");
      return;
    }
    if (name === "flatten") disarm();
    const reason = $("reason").value.trim() || "dashboard";
    setText("control-result", `${name}: sending…`, "result");
    try {
      const r = await api("/control/" + name, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason }),
      });
      if (r.status === 202) {
        setText("control-result", `${name}: accepted (${reason})`, "result ok");
      } else if (r.status === 401) {
        needToken(Boolean(token));
        setText("control-result", `${name}: the token was refused`, "result bad");
      } else {
        setText("control-result", `${name}: refused (HTTP ${r.status}): ${r.body.error || ""}`, "result bad");
      }
    } catch (e) {
      setText("control-result", `${name}: no answer from the daemon`, "result bad");
    }
    refresh();
  }

  // -- wiring -----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = $("token-input").value.trim();
      $("token-input").value = "";
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
      refresh();
    });
    $("token-forget").addEventListener("click", () => {
      token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      refresh();
    });
    for (const b of document.querySelectorAll("button.cmd")) {
      b.addEventListener("click", () => command(b.dataset.command));
    }
    window.addEventListener("resize", () => {
      if (lastSeries !== null) drawChart(lastSeries);
    });
    refresh();
  });
})();
