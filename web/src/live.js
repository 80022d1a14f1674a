// The page's one live connection: a Server-Sent Events stream of status snapshots
// (/console/api/events, one every 2 s). Pages subscribe and get each snapshot; the last one
// is kept for a page that opens between two.

const listeners = new Set();
let source = null;
let last = null;

function open() {
  source = new EventSource("api/events");
  source.addEventListener("status", (event) => {
    try {
      last = JSON.parse(event.data);
    } catch {
      return;
    }
    for (const f of listeners) {
      try {
        f(last);
      } catch (e) {
        console.warn("console page update failed", e);
      }
    }
  });
}

/** Calls f with every snapshot (at once with the last one); returns the unsubscribe. */
export function subscribe(f) {
  if (!source) open();
  listeners.add(f);
  if (last) f(last);
  return () => listeners.delete(f);
}

export function lastSnapshot() {
  return last;
}
