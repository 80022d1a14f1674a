// Delivery streams: state, backlog (records, bytes, age of the oldest), what was delivered,
// the last error with its time, records lost to retention, and a live chart of each
// stream's throughput (records/s from the delivered counters of two snapshots).
import { subscribe } from "../live.js";
import { liveChart } from "../chart.js";
import { h, fill, bytes, num, ago, badge } from "../util.js";

const GOOD = { delivering: true, video: true, failing: false, backing_off: false };

export function render(main) {
  const body = h("div", { id: "deliveries-list" });
  const chartEl = h("div", { class: "chart", id: "delivery-throughput" });
  fill(main, h("h1", {}, "Delivery streams"), chartEl, body);
  const chart = liveChart(chartEl, { title: "Delivered records/s", unit: "records/s" });
  let previous = null;
  const unsubscribe = subscribe((snap) => {
    const list = snap.status.delivery_streams || [];
    if (previous) {
      const seconds = Math.max(0.001, (snap.time_ms - previous.time) / 1000);
      const values = {};
      for (const d of list) {
        const before = previous.delivered[d.name];
        if (before !== undefined) values[d.name] = Math.max(0, d.delivered_records - before) / seconds;
      }
      if (Object.keys(values).length) chart.push(snap.time_ms, values);
    }
    previous = { time: snap.time_ms, delivered: Object.fromEntries(list.map((d) => [d.name, d.delivered_records])) };
    fill(
      body,
      list.length === 0
        ? h("p", { class: "muted" }, "No delivery streams are configured.")
        : h("table", {},
          h("thead", {}, h("tr", {}, ["Name", "State", "Source", "Destination", "Backlog", "Oldest", "Delivered", "Retries", "Lost", "Last error"].map((t) => h("th", {}, t)))),
          h("tbody", {}, list.map((d) =>
            h("tr", { "data-delivery": d.name },
              h("td", {}, d.name),
              h("td", {}, badge(d.state.replace("_", " "), GOOD[d.state]), d.paused_reason ? h("div", { class: "muted" }, d.paused_reason) : null),
              h("td", {}, typeof d.source === "string" ? d.source : d.source && d.source.stream),
              h("td", {}, d.destination && (d.destination.type || d.destination.kind || JSON.stringify(d.destination))),
              h("td", {}, `${num(d.backlog_records)} records`, h("div", { class: "muted" }, bytes(d.backlog_bytes))),
              h("td", {}, ago(d.oldest_undelivered_age_ms)),
              h("td", {}, `${num(d.delivered_records)} records`, h("div", { class: "muted" }, bytes(d.delivered_bytes))),
              h("td", {}, num(d.retries)),
              h("td", {}, num(d.records_lost)),
              h("td", {}, d.last_error ? [h("div", { class: "error" }, d.last_error.message), h("div", { class: "muted" }, d.last_error.at)] : "–"),
            )))),
    );
  });
  return () => {
    unsubscribe();
    chart.destroy();
  };
}
