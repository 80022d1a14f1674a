// Overview: health and readiness with reasons, disk against min_free_disk, the ingest rate
// (records/s and bytes/s) as live charts, MQTT, delivery backlogs, cameras, analytics, what
// needs attention (read from the snapshot: not ready, failing, down) and the gateway's recent
// log warnings.
import { subscribe } from "../live.js";
import { liveChart } from "../chart.js";
import { h, fill, bytes, num, ago, time, badge } from "../util.js";

function card(label, value, extra) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), extra);
}

/** What deserves attention in a snapshot, most important first. */
export function warnings(snap) {
  const s = snap.status;
  const out = [];
  for (const r of s.not_ready || []) out.push(`not ready: ${r}`);
  if (s.writes_suspended) out.push(`writes suspended: ${s.writes_suspended.error}`);
  if (s.disk_free_bytes !== null && s.disk_free_bytes < snap.min_free_disk)
    out.push(`disk: ${bytes(s.disk_free_bytes)} free, below min_free_disk (${bytes(snap.min_free_disk)})`);
  for (const d of s.delivery_streams || []) {
    if (d.state === "failing" || d.state === "backing_off")
      out.push(`delivery ${d.name}: ${d.state}${d.last_error ? `: ${d.last_error.message} (${d.last_error.at})` : ""}`);
    if (d.records_lost) out.push(`delivery ${d.name}: ${num(d.records_lost)} records lost to retention`);
  }
  for (const c of s.cameras || []) {
    if (c.state !== "connected") out.push(`camera ${c.name}: ${c.state}${c.last_error ? `: ${c.last_error}` : ""}`);
  }
  for (const a of s.analytics || []) {
    if (a.state === "failed") out.push(`analytics ${a.name}: failed: ${a.error || ""}`);
  }
  return out;
}

export function render(main) {
  const cards = h("div", { class: "grid", id: "overview-cards" });
  const records = h("div", { class: "chart", id: "ingest-records" });
  const volume = h("div", { class: "chart", id: "ingest-bytes" });
  const warn = h("ul", { id: "attention" });
  const logged = h("div", { id: "warnings" });
  fill(main, h("h1", {}, "Overview"), cards, records, volume, h("h2", {}, "Needs attention"), warn, h("h2", {}, "Recent warnings"), logged);
  const recordsChart = liveChart(records, { title: "Ingest: records/s", unit: "records/s" });
  const bytesChart = liveChart(volume, { title: "Ingest: bytes/s", unit: "bytes/s" });
  let max = 0;

  const unsubscribe = subscribe((snap) => {
    const s = snap.status;
    const r = snap.rates;
    if (r.records_per_s !== null) {
      recordsChart.push(snap.time_ms, { "records/s": r.records_per_s });
      bytesChart.push(snap.time_ms, { "bytes/s": r.bytes_per_s });
      max = Math.max(max, r.records_per_s);
      records.dataset.points = recordsChart.points;
      records.dataset.max = max;
    }
    const cams = s.cameras || [];
    const up = cams.filter((c) => c.state === "connected").length;
    const deliveries = s.delivery_streams || [];
    const backlog = deliveries.reduce((a, d) => a + (d.backlog_records || 0), 0);
    const apps = s.analytics || [];
    const diskLow = s.disk_free_bytes !== null && s.disk_free_bytes < snap.min_free_disk;
    fill(
      cards,
      card("Health", s.ready ? badge("ready", true) : badge("not ready", false),
        (s.not_ready || []).map((x) => h("div", { class: "error" }, x))),
      card("Uptime", ago(s.uptime_s * 1000), h("div", { class: "muted" }, `version ${s.version}`)),
      card("Memory (RSS)", bytes(s.memory_bytes)),
      card("Disk free", bytes(s.disk_free_bytes),
        h("div", { class: diskLow ? "error" : "muted" }, `min_free_disk ${bytes(snap.min_free_disk)}; database ${bytes(s.storage_file_bytes)}`)),
      card("Ingest", `${num(r.records_per_s, 1)} rec/s`, h("div", { class: "muted" }, `${bytes(r.bytes_per_s)}/s`)),
      card("Streams", num((s.streams || []).length),
        h("div", { class: "muted" }, `${num(s.streams.reduce((a, x) => a + x.records, 0))} records`)),
      card("MQTT", s.mqtt ? `${num(s.mqtt.connected)} connected` : "off",
        s.mqtt ? h("div", { class: "muted" }, `${num(s.mqtt.devices)} devices registered`) : null),
      card("Delivery backlog", `${num(backlog)} records`, h("div", { class: "muted" }, `${deliveries.length} delivery streams`)),
      card("Cameras", `${up} up / ${cams.length - up} down`),
      card("Analytics", `${apps.filter((a) => a.state === "running").length} running`,
        h("div", { class: "muted" }, `${apps.length} applications`)),
    );
    const list = warnings(snap);
    fill(warn, list.length ? list.map((w) => h("li", { class: "error" }, w)) : h("li", { class: "muted" }, "nothing"));
    const recent = (snap.warnings || []).slice().reverse();
    fill(logged, recent.length === 0 ? h("p", { class: "muted" }, "none since the gateway started") :
      h("table", {},
        h("thead", {}, h("tr", {}, ["Time (UTC)", "Level", "Where", "Warning"].map((t) => h("th", {}, t)))),
        h("tbody", {}, recent.map((w) => h("tr", {},
          h("td", {}, time(w.time_ms)),
          h("td", {}, badge(w.level, w.level === "error" ? false : undefined)),
          h("td", {}, w.target),
          h("td", {}, w.text))))));
  });
  return () => {
    unsubscribe();
    recordsChart.destroy();
    bytesChart.destroy();
  };
}
