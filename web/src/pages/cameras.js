// Cameras: their state; for the chosen one the live view (HLS through hls.js, or the
// browser's own HLS), a timeline of what is recorded with its gaps (click to play from
// there), a snapshot, and a clip of a chosen range to download.
import Hls from "hls.js/light";
import { subscribe } from "../live.js";
import { get } from "../api.js";
import { h, fill, bytes, time, badge, errorLine } from "../util.js";

export function render(main, [chosen]) {
  const list = h("div", { id: "cameras-list" });
  const view = h("div", { id: "camera-view" });
  fill(main, h("h1", {}, "Cameras"), list, view);
  let current = null;
  let cleanupView = null;
  const unsubscribe = subscribe((snap) => {
    const cams = snap.status.cameras || [];
    fill(list, cams.length === 0 ? h("p", { class: "muted" }, "No cameras are configured.") :
      h("table", {},
        h("thead", {}, h("tr", {}, ["Camera", "State", "Codec", "Bitrate", "Recorded", "Oldest", "Gaps", "Last error"].map((t) => h("th", {}, t)))),
        h("tbody", {}, cams.map((c) => h("tr", {},
          h("td", {}, h("a", { href: `#/cameras/${encodeURIComponent(c.name)}` }, c.name)),
          h("td", {}, badge(c.state, c.state === "connected")),
          h("td", {}, c.codec ? `${c.codec} ${c.width}x${c.height}` : "–"),
          h("td", {}, `${bytes(c.bitrate_bps / 8)}/s`),
          h("td", {}, bytes(c.bytes)),
          h("td", {}, time(c.oldest_ms)),
          h("td", {}, String(c.gaps)),
          h("td", {}, c.last_error || "–"))))));
    const pick = chosen || (cams[0] && cams[0].name);
    if (pick && pick !== current) {
      current = pick;
      if (cleanupView) cleanupView();
      cleanupView = camera(view, pick);
    }
  });
  return () => {
    unsubscribe();
    if (cleanupView) cleanupView();
  };
}

function play(video, url, state) {
  if (state.hls) state.hls.destroy();
  state.hls = null;
  if (Hls.isSupported()) {
    const hls = new Hls({ liveSyncDurationCount: 2, enableWorker: true });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) console.warn("video:", data.type, data.details);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    state.hls = hls;
  } else {
    video.src = url;
  }
  video.play().catch(() => {});
}

function camera(view, name) {
  const base = `/video/${encodeURIComponent(name)}`;
  const video = h("video", { id: "live-video", muted: true, controls: true, playsinline: true, autoplay: true });
  const line = h("div", { class: "timeline", id: "timeline", title: "click to play from there" });
  const lineNote = h("div", { class: "muted" });
  const image = h("div");
  const startIn = h("input", { type: "datetime-local", step: "1", name: "clip-start" });
  const endIn = h("input", { type: "datetime-local", step: "1", name: "clip-end" });
  const clipNote = h("div");
  const state = { hls: null, range: null };
  const local = (ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  };
  fill(view,
    h("h2", {}, `${name}: live`),
    video,
    h("div", { class: "row" },
      h("button", { class: "plain", onclick: () => play(video, `${base}/live.m3u8`, state) }, "Live"),
      h("button", { class: "plain", id: "snapshot", onclick: () => {
        fill(image, h("img", { src: `${base}/image.jpg?at=${Date.now() - 3000}`, alt: `${name} snapshot` }));
      } }, "Snapshot")),
    image,
    h("h2", {}, "Recorded"),
    line, lineNote,
    h("div", { class: "row" },
      h("label", {}, "Clip from", startIn),
      h("label", {}, "to", endIn),
      h("button", { id: "make-clip", onclick: () => {
        const start = new Date(startIn.value).getTime();
        const end = new Date(endIn.value).getTime();
        if (!(end > start)) {
          fill(clipNote, h("p", { class: "error" }, "the end must be after the start"));
          return;
        }
        fill(clipNote, h("a", { id: "clip-link", href: `${base}/clip.mp4?start=${start}&end=${end}`, download: `${name}-${start}.mp4` }, "Download the clip (MP4)"));
      } }, "Make clip")),
    clipNote);
  play(video, `${base}/live.m3u8`, state);

  line.addEventListener("click", (e) => {
    if (!state.range) return;
    const [from, to] = state.range;
    const at = from + ((e.offsetX / line.clientWidth) * (to - from));
    play(video, `${base}/vod.m3u8?start=${Math.floor(at)}&end=${to}`, state);
  });

  async function timeline() {
    try {
      const list = await get(`${base}/fragments`);
      const frags = list.fragments || [];
      if (!frags.length) {
        fill(lineNote, "nothing recorded yet");
        return;
      }
      const from = frags[0].producer_ms;
      const last = frags[frags.length - 1];
      const to = Math.max(last.producer_ms + last.duration_ms, from + 1);
      state.range = [from, to];
      const pct = (ms) => `${(100 * (ms - from)) / (to - from)}%`;
      const spans = [];
      let spanStart = from;
      for (const g of (list.gaps || []).filter((g) => g.end_ms > from && g.start_ms < to)) {
        if (g.start_ms > spanStart) spans.push([spanStart, g.start_ms]);
        spanStart = Math.max(spanStart, g.end_ms);
      }
      if (spanStart < to) spans.push([spanStart, to]);
      fill(line, spans.map(([a, b]) => {
        const el = h("div", { class: "rec" });
        el.style.left = pct(a);
        el.style.width = `calc(${pct(b)} - ${pct(a)})`;
        return el;
      }));
      fill(lineNote, `${time(from)} to ${time(to)} UTC; ${(list.gaps || []).length} gaps${list.truncated ? " (the newest fragments only)" : ""}`);
      if (!startIn.value) {
        startIn.value = local(Math.max(from, to - 10000));
        endIn.value = local(to);
      }
    } catch (e) {
      fill(lineNote, errorLine(e));
    }
  }
  timeline();
  const timer = setInterval(timeline, 10000);
  return () => {
    clearInterval(timer);
    if (state.hls) state.hls.destroy();
    video.removeAttribute("src");
  };
}
