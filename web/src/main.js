// The console application: hash routes (#/overview, #/streams, #/streams/NAME, ...), each a
// page module with render(main, args) that returns its clean-up. The banner says when the
// gateway has no credentials (the console is then as open as the API).
import "./style.css";
import { get, send } from "./api.js";
import { h, fill } from "./util.js";
import * as overview from "./pages/overview.js";
import * as streams from "./pages/streams.js";
import * as devices from "./pages/devices.js";
import * as deliveries from "./pages/deliveries.js";
import * as cameras from "./pages/cameras.js";
import * as analytics from "./pages/analytics.js";

const pages = { overview, streams, devices, deliveries, cameras, analytics };
const main = document.getElementById("page");
let cleanup = null;

function route() {
  const [name, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = pages[name] || overview;
  if (cleanup) cleanup();
  cleanup = null;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${pages[name] ? name : "overview"}`);
  }
  fill(main);
  main.dataset.page = pages[name] ? name : "overview";
  try {
    cleanup = page.render(main, args) || null;
  } catch (e) {
    fill(main, h("p", { class: "error" }, String(e)));
  }
}

async function start() {
  try {
    const session = await get("api/session");
    const banner = document.getElementById("banner");
    if (session.open) {
      banner.textContent =
        "This gateway has no [[api.credentials]]: the console, like the API, is open to anyone who can reach this address.";
      banner.hidden = false;
    } else {
      document.getElementById("who").textContent = session.access_key_id || "";
      const logout = document.getElementById("logout");
      logout.hidden = false;
      logout.addEventListener("click", async () => {
        await send("POST", "api/logout").catch(() => {});
        location.assign("login");
      });
    }
  } catch (e) {
    console.warn("no session", e);
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
