// Devices: the registry (the device files, as the gateway loads them) with what each device
// does on the MQTT listener (online, address, last seen, messages, bytes, refusals: live, from
// the snapshot's mqtt.device_activity) and the listener's totals; add a device (its secret is shown once, here, and stored
// by the gateway only as a hash) or remove one. The gateway reloads the directory within
// seconds of a change.
import { subscribe } from "../live.js";
import { get, send } from "../api.js";
import { h, fill, num, bytes, ago, badge, errorLine } from "../util.js";

export function render(main) {
  const summary = h("div", { class: "grid", id: "mqtt-summary" });
  const body = h("div", { id: "devices-list" });
  const status = h("div", { id: "device-status" });
  const idIn = h("input", { name: "device-id", placeholder: "device id", required: true });
  const kindSel = h("select", { name: "kind" }, h("option", { value: "sensor" }, "sensor"), h("option", { value: "camera" }, "camera"));
  const publishIn = h("input", { name: "publish", placeholder: "devices/{device}/#" });
  let activity = {};

  // The live columns of each device's row, from the newest snapshot.
  function showActivity() {
    for (const tr of body.querySelectorAll("tr[data-device]")) {
      const a = activity[tr.dataset.device];
      const cell = (field) => tr.querySelector(`td[data-field="${field}"]`);
      if (!cell("state")) continue;
      fill(cell("state"), a ? badge(a.connections > 0 ? "online" : "offline", a.connections > 0) : h("span", { class: "muted" }, "never seen"));
      fill(cell("address"), a?.address ?? "–");
      fill(cell("last-seen"), a ? `${ago(Date.now() - a.last_seen)} ago` : "–");
      fill(cell("messages"), a ? num(a.messages) : "–");
      fill(cell("bytes"), a ? bytes(a.bytes) : "–");
      fill(cell("refused"), a ? num(a.refused) : "–");
    }
  }

  async function load() {
    try {
      const answer = await get("api/devices");
      fill(body,
        h("p", { class: "muted" }, `Device files in ${answer.dir}`),
        answer.devices.length === 0 ? h("p", { class: "muted" }, "No devices.") :
          h("table", {},
            h("thead", {}, h("tr", {}, ["Device", "Kind", "State", "Address", "Last seen", "Messages", "Bytes", "Refused", "Secret", "Publishes", "Subscribes", "Metadata", ""].map((t) => h("th", {}, t)))),
            h("tbody", {}, answer.devices.map((d) => h("tr", { "data-device": d.id },
              h("td", {}, d.id),
              h("td", {}, d.kind),
              ["state", "address", "last-seen", "messages", "bytes", "refused"].map((f) => h("td", { "data-field": f })),
              h("td", {}, d.has_secret ? "hash" : "none"),
              h("td", {}, d.publish.join(", ")),
              h("td", {}, d.subscribe.join(", ")),
              h("td", {}, Object.entries(d.metadata || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")),
              h("td", {}, h("button", { class: "danger", onclick: () => {
                if (!confirm(`Remove device ${d.id}? It is disconnected and can no longer connect.`)) return;
                send("DELETE", `api/devices/${encodeURIComponent(d.id)}`)
                  .then(() => { fill(status, h("p", {}, `${d.id} removed`)); load(); })
                  .catch((e) => fill(status, errorLine(e)));
              } }, "Remove")))))),
        answer.problems.map((p) => h("p", { class: "error" }, p)));
      showActivity();
    } catch (e) {
      fill(body, errorLine(e));
    }
  }

  const form = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const answer = await send("POST", "api/devices", {
        id: idIn.value,
        kind: kindSel.value,
        publish: publishIn.value ? [publishIn.value] : [],
      });
      fill(status,
        h("p", {}, `Device ${answer.id} added. Its secret, shown this once (the gateway keeps only a hash):`),
        h("p", { class: "secret", id: "new-secret" }, answer.secret),
        h("p", { class: "muted" }, `It connects over MQTT with client id and username ${answer.id} and this secret as password.`));
      idIn.value = "";
      load();
    } catch (err) {
      fill(status, errorLine(err));
    }
  } },
  h("label", {}, "Device id", idIn), h("label", {}, "Kind", kindSel), h("label", {}, "May publish to", publishIn),
  h("button", { type: "submit" }, "Add device"));

  fill(main, h("h1", {}, "Devices"), summary, h("h2", {}, "Registry"), body, h("h2", {}, "Add a device"), form, status);
  load();
  const unsubscribe = subscribe((snap) => {
    const m = snap.status.mqtt;
    if (!m) {
      fill(summary, h("p", { class: "muted" }, "The MQTT listener is off."));
      return;
    }
    activity = m.device_activity || {};
    showActivity();
    const r = m.refused || {};
    const card = (label, value) => h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
    fill(summary,
      card("Connected now", num(m.connected)),
      card("Registered", num(m.devices)),
      card("Messages stored", num(m.stored)),
      card("Unrouted", num(m.unrouted)),
      card("Refused", num(Object.values(r).reduce((a, b) => a + b, 0))),
      h("div", { class: "card" }, h("div", { class: "label" }, "Refusals by reason"),
        h("div", {}, Object.entries(r).map(([k, v]) => `${k} ${v}`).join(", "))));
  });
  return unsubscribe;
}
