// The login page: posts the access key id and secret once (JSON, never stored), then goes to
// the console, whose session cookie the gateway set (HttpOnly: this script cannot read it).
import "./style.css";

const form = document.getElementById("login");
const error = document.getElementById("error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = new FormData(form);
  const body = JSON.stringify({
    access_key_id: String(data.get("access_key_id") || ""),
    secret: String(data.get("secret") || ""),
  });
  let response;
  try {
    response = await fetch("api/login", {
      method: "POST",
      headers: { "content-type": "application/json", "x-kinedge-console": "1" },
      body,
    });
  } catch (e) {
    error.textContent = `The gateway does not answer: ${e.message}`;
    error.hidden = false;
    return;
  }
  if (response.ok) {
    location.replace(`./${location.hash}`); // back to the page that sent here
    return;
  }
  const answer = await response.json().catch(() => ({}));
  error.textContent = answer.message || `Refused (${response.status})`;
  error.hidden = false;
  form.elements.secret.value = "";
});
