// Streams: the list (shards, records, bytes, retention, quota) with create, reshard and
// delete (confirmed); and a data viewer like the AWS console's (#/streams/NAME): a shard, a
// starting point, pages of records as JSON, text or hex, and follow live.
import { subscribe } from "../live.js";
import { kinesis } from "../api.js";
import { h, fill, bytes, num, time, errorLine } from "../util.js";

export function render(main, [name]) {
  return name ? viewer(main, name) : list(main);
}

function list(main) {
  const body = h("div", { id: "streams-list" });
  const status = h("div");
  const nameIn = h("input", { name: "name", placeholder: "name", required: true });
  const shardsIn = h("input", { name: "shards", type: "number", min: "1", value: "1", class: "narrow" });
  const create = h(
    "form",
    {
      class: "row",
      onsubmit: async (e) => {
        e.preventDefault();
        await act(status, () => kinesis("CreateStream", { StreamName: nameIn.value, ShardCount: Number(shardsIn.value) }));
      },
    },
    h("label", {}, "Stream name", nameIn),
    h("label", {}, "Shards", shardsIn),
    h("button", { type: "submit" }, "Create stream"),
  );
  fill(main, h("h1", {}, "Streams"), body, h("h2", {}, "Create a stream"), create, status);
  return subscribe((snap) => {
    const streams = snap.status.streams || [];
    fill(
      body,
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Name", "Shards (open / all)", "Rate", "Records", "Bytes", "Retention", "Quota", ""].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          streams.map((s) =>
            h(
              "tr",
              { "data-stream": s.name },
              h("td", {}, h("a", { href: `#/streams/${encodeURIComponent(s.name)}` }, s.name)),
              h("td", {}, `${s.open_shards} / ${s.shards}`),
              h("td", {}, rate(snap.stream_rates[s.name])),
              h("td", {}, num(s.records)),
              h("td", {}, bytes(s.bytes)),
              h("td", {}, `${s.retention_hours} h`),
              h("td", {}, s.max_bytes ? bytes(s.max_bytes) : "none"),
              h(
                "td",
                {},
                h("button", {
                  class: "plain",
                  onclick: () => {
                    const n = prompt(`New shard count for ${s.name}:`, String(s.open_shards));
                    if (n) act(status, () => kinesis("UpdateShardCount", { StreamName: s.name, TargetShardCount: Number(n), ScalingType: "UNIFORM_SCALING" }));
                  },
                }, "Reshard"),
                " ",
                h("button", {
                  class: "danger",
                  onclick: () => {
                    if (confirm(`Delete stream ${s.name} and all its records?`))
                      act(status, () => kinesis("DeleteStream", { StreamName: s.name, EnforceConsumerDeletion: true }));
                  },
                }, "Delete"),
              ),
            ),
          ),
        ),
      ),
    );
  });
}

function rate(r) {
  return r ? `${num(r.records_per_s, 1)} rec/s, ${bytes(r.bytes_per_s)}/s` : "–";
}

async function act(status, f) {
  fill(status, h("p", { class: "muted" }, "working..."));
  try {
    await f();
    fill(status, h("p", {}, "done; the list updates within 2 s"));
  } catch (e) {
    fill(status, errorLine(e));
  }
}

function base64Bytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A record's data as JSON (pretty when it parses), text or hex. */
export function show(data, format) {
  const raw = base64Bytes(data);
  if (format === "hex") return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder("utf-8", { fatal: false }).decode(raw);
  if (format === "json") {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }
  return text;
}

function viewer(main, name) {
  const shardSel = h("select", { name: "shard" });
  const typeSel = h("select", { name: "type" },
    ["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AT_TIMESTAMP"].map((t) => h("option", { value: t }, t)));
  const seqIn = h("input", { name: "sequence", placeholder: "sequence number" });
  const timeIn = h("input", { name: "timestamp", type: "datetime-local", step: "1" });
  const formatSel = h("select", { name: "format" }, ["json", "text", "hex"].map((t) => h("option", { value: t }, t)));
  const follow = h("input", { type: "checkbox", name: "follow" });
  const rows = h("tbody");
  const note = h("div");
  let iterator = null;
  let records = [];
  let timer = null;
  let stopped = false;

  const draw = () =>
    fill(rows, records.map((r) =>
      h("tr", { class: "record" },
        h("td", {}, r.SequenceNumber),
        h("td", {}, r.PartitionKey),
        h("td", {}, time(r.ApproximateArrivalTimestamp * 1000)),
        h("td", {}, h("pre", {}, show(r.Data, formatSel.value))))));

  async function page(append) {
    if (!iterator) return;
    const answer = await kinesis("GetRecords", { ShardIterator: iterator, Limit: 50 });
    iterator = answer.NextShardIterator;
    records = append ? records.concat(answer.Records) : answer.Records;
    if (records.length > 500) records = records.slice(-500);
    draw();
    fill(note, h("p", { class: "muted" },
      `${records.length} records shown; ${answer.MillisBehindLatest ?? 0} ms behind the newest${iterator ? "" : "; the shard is closed"}`));
  }

  async function start() {
    try {
      const body = { StreamName: name, ShardId: shardSel.value, ShardIteratorType: typeSel.value };
      if (typeSel.value === "AT_SEQUENCE_NUMBER") body.StartingSequenceNumber = seqIn.value;
      if (typeSel.value === "AT_TIMESTAMP") body.Timestamp = new Date(timeIn.value).getTime() / 1000;
      iterator = (await kinesis("GetShardIterator", body)).ShardIterator;
      await page(false);
    } catch (e) {
      fill(note, errorLine(e));
    }
  }

  async function tick() {
    timer = null;
    if (stopped || !follow.checked) return;
    try {
      await page(true);
    } catch (e) {
      fill(note, errorLine(e));
    }
    if (!stopped && follow.checked) timer = setTimeout(tick, 1000);
  }
  follow.addEventListener("change", () => {
    if (follow.checked && !timer) tick();
  });
  formatSel.addEventListener("change", draw);

  fill(
    main,
    h("h1", {}, h("a", { href: "#/streams" }, "Streams"), " / ", name),
    h("div", { class: "row" },
      h("label", {}, "Shard", shardSel),
      h("label", {}, "Start at", typeSel),
      h("label", {}, "Sequence number", seqIn),
      h("label", {}, "Time", timeIn),
      h("button", { id: "get-records", onclick: start }, "Get records"),
      h("button", { class: "plain", onclick: () => page(true).catch((e) => fill(note, errorLine(e))) }, "Next page"),
      h("label", {}, "Show as", formatSel),
      h("label", {}, "Follow live", follow)),
    note,
    h("table", { id: "records" },
      h("thead", {}, h("tr", {}, ["Sequence number", "Partition key", "Arrival", "Data"].map((t) => h("th", {}, t)))),
      rows),
  );
  kinesis("ListShards", { StreamName: name })
    .then((answer) => {
      fill(shardSel, answer.Shards.map((s) =>
        h("option", { value: s.ShardId }, `${s.ShardId}${s.SequenceNumberRange.EndingSequenceNumber ? " (closed)" : ""}`)));
      main.dataset.ready = "1";
    })
    .catch((e) => fill(note, errorLine(e)));
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
