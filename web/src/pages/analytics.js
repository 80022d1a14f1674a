// Analytics: the applications with their SQL, state, input lag, watermark, records in and
// out and late rows (start, stop, delete); a live chart of a chosen application's output
// (read from its output stream: one line per key, e.g. per device); and a SQL editor that
// creates an application or runs an ad-hoc query over stored history (a results table).
import { subscribe } from "../live.js";
import { liveChart } from "../chart.js";
import { kinesis, send } from "../api.js";
import { h, fill, num, time, badge, errorLine } from "../util.js";

export function render(main, [chosen]) {
  const list = h("div", { id: "analytics-list" });
  const chartBox = h("div");
  const nameIn = h("input", { name: "app-name", placeholder: "application name" });
  const sqlIn = h("textarea", { name: "sql", spellcheck: false, placeholder: "SELECT ... FROM stream ..." });
  const result = h("div", { id: "query-result" });
  fill(main,
    h("h1", {}, "Analytics"),
    list,
    chartBox,
    h("h2", {}, "SQL"),
    sqlIn,
    h("div", { class: "row" },
      h("label", {}, "Name (to create an application)", nameIn),
      h("button", { id: "create-app", onclick: () => run(result, () => send("POST", "/analytics", { name: nameIn.value, sql: sqlIn.value }), () => h("p", {}, `application ${nameIn.value} created`)) }, "Create application"),
      h("button", { id: "run-query", class: "plain", onclick: () => run(result, () => send("POST", "/analytics/query", { sql: sqlIn.value, max_rows: 1000 }), rowsTable) }, "Run query")),
    result);

  let current = null;
  let cleanupChart = null;
  const unsubscribe = subscribe((snap) => {
    const apps = snap.status.analytics || [];
    fill(list, apps.length === 0 ? h("p", { class: "muted" }, "No applications.") :
      h("table", {},
        h("thead", {}, h("tr", {}, ["Application", "State", "Input lag", "Watermark", "In", "Out", "Late", "Errors", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, apps.map((a) => h("tr", { "data-app": a.name },
          h("td", {}, h("a", { href: `#/analytics/${encodeURIComponent(a.name)}` }, a.name),
            h("details", {}, h("summary", {}, "SQL"), h("pre", {}, a.sql)),
            a.error ? h("div", { class: "error" }, a.error) : null),
          h("td", {}, badge(a.state, a.state === "running" ? true : a.state === "failed" ? false : undefined)),
          h("td", {}, a.input_lag_ms === null ? "–" : `${num(a.input_lag_ms)} ms`),
          h("td", {}, time(a.watermark)),
          h("td", {}, num(a.records_in)),
          h("td", {}, num(a.records_out)),
          h("td", {}, num(a.late_records)),
          h("td", {}, num(a.error_records)),
          h("td", {}, a.origin === "config" ? h("span", { class: "muted" }, "from the configuration") : [
            h("button", { class: "plain", onclick: () => run(result, () => send("POST", `/analytics/${encodeURIComponent(a.name)}/${a.state === "running" ? "stop" : "start"}`), null) }, a.state === "running" ? "Stop" : "Start"),
            " ",
            h("button", { class: "danger", onclick: () => {
              if (confirm(`Delete application ${a.name}?`)) run(result, () => send("DELETE", `/analytics/${encodeURIComponent(a.name)}`), null);
            } }, "Delete")]))))));
    const pick = chosen || (apps[0] && apps[0].name);
    const app = apps.find((a) => a.name === pick);
    if (app && app.name !== current && app.outputs && app.outputs.length) {
      current = app.name;
      if (cleanupChart) cleanupChart();
      cleanupChart = outputChart(chartBox, app);
    }
  });
  return () => {
    unsubscribe();
    if (cleanupChart) cleanupChart();
  };
}

async function run(result, call, show) {
  fill(result, h("p", { class: "muted" }, "running..."));
  try {
    const answer = await call();
    fill(result, show ? show(answer) : h("p", {}, "done"));
  } catch (e) {
    fill(result, errorLine(e));
  }
}

function rowsTable(answer) {
  return h("div", {},
    h("p", { class: "muted" }, `${answer.rows.length} rows${answer.truncated ? " (cut at the row limit)" : ""}`),
    h("table", {},
      h("thead", {}, h("tr", {}, answer.columns.map((c) => h("th", {}, c)))),
      h("tbody", {}, answer.rows.map((r) => h("tr", {}, answer.columns.map((c) => h("td", {}, r[c] === null ? "NULL" : String(r[c]))))))));
}

function decode(b64) {
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** Which field names a line (the first text field) and which is plotted (the first number). */
function pickFields(row) {
  const keys = Object.keys(row);
  const label = keys.find((k) => typeof row[k] === "string" && !/time|window|rowtime/i.test(k));
  const value = keys.find((k) => typeof row[k] === "number");
  return { label, value };
}

/** Follows the application's first output stream from its oldest kept record and plots its rows. */
function outputChart(box, app) {
  const stream = app.outputs[0];
  const el = h("div", { class: "chart", id: "app-output" });
  fill(box, h("h2", {}, `${app.name}: output (${stream})`), el);
  const chart = liveChart(el, { title: `${app.name} output`, unit: "" });
  let iterators = null;
  let stopped = false;
  let timer = null;
  async function tick() {
    timer = null;
    try {
      if (!iterators) {
        const shards = (await kinesis("ListShards", { StreamName: stream })).Shards;
        iterators = await Promise.all(shards.map(async (s) =>
          (await kinesis("GetShardIterator", { StreamName: stream, ShardId: s.ShardId, ShardIteratorType: "TRIM_HORIZON" })).ShardIterator));
      }
      const rows = [];
      for (let i = 0; i < iterators.length; i++) {
        if (!iterators[i]) continue;
        const answer = await kinesis("GetRecords", { ShardIterator: iterators[i], Limit: 500 });
        iterators[i] = answer.NextShardIterator;
        for (const r of answer.Records) {
          const row = decode(r.Data);
          if (row && typeof row === "object") rows.push([r.ApproximateArrivalTimestamp * 1000, row]);
        }
      }
      rows.sort((a, b) => a[0] - b[0]);
      for (const [at, row] of rows.slice(-150)) {
        const { label, value } = pickFields(row);
        if (!value) continue;
        chart.push(at, { [label ? String(row[label]) : value]: row[value] });
      }
      el.dataset.points = chart.points;
    } catch (e) {
      console.warn("analytics output:", e.message);
    }
    if (!stopped) timer = setTimeout(tick, 2000);
  }
  tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    chart.destroy();
  };
}
