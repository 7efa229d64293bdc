// Sluice console: the little a page does by itself. Pages work without it.
// - [data-refresh][data-source]: the element is fetched again every data-refresh ms from
//   data-source (the same page) and replaced by its newer copy, while the tab is visible.
// - #tail[data-stream]: the live tail follows the topic's Server-Sent Events and adds each
//   record at the top of the table (at most 1,000 kept).
// - form[data-confirm]: asks before the form is sent (deleting a user, removing an ACL).
"use strict";

function refreshLive(element) {
  const every = Number(element.dataset.refresh);
  const source = element.dataset.source;
  if (!every || !source) return;
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(source, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(element.id);
      if (fresh) element.replaceChildren(...fresh.childNodes);
    } catch (_) {
      // The broker is away for a moment: the next round tries again.
    }
  }, every);
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function shown(record, name) {
  if (typeof record[name] === "string") {
    try {
      const parsed = JSON.parse(record[name]);
      if (parsed !== null && typeof parsed === "object") return JSON.stringify(parsed, null, 2);
    } catch (_) { /* not JSON: as it is */ }
    return record[name];
  }
  if (typeof record[name + "_base64"] === "string") return record[name + "_base64"];
  return "null";
}

function utc(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function tail(button) {
  const rows = document.getElementById("tail-rows");
  const status = document.getElementById("tail-status");
  let source = null;
  let count = 0;
  button.addEventListener("click", () => {
    if (source) {
      source.close();
      source = null;
      button.textContent = "Live tail";
      status.textContent = "stopped";
      return;
    }
    source = new EventSource(button.dataset.stream);
    button.textContent = "Stop";
    status.textContent = "connecting...";
    // The stream answers once it knows where "latest" is: records produced from then on
    // show.
    source.addEventListener("open", () => { status.textContent = "waiting for records..."; });
    source.addEventListener("record", (event) => {
      const record = JSON.parse(event.data);
      const tr = document.createElement("tr");
      tr.className = "record live";
      tr.append(cell(String(record.partition), "num"), cell(String(record.offset), "num"),
        cell(utc(record.timestamp), "time"), cell(shown(record, "key"), "key"));
      const value = cell("", "value");
      const pre = document.createElement("pre");
      pre.textContent = shown(record, "value");
      value.append(pre);
      const headers = cell("", "headers");
      for (const h of record.headers || []) {
        const div = document.createElement("div");
        div.textContent = shown(h, "key") + "=" + shown(h, "value");
        headers.append(div);
      }
      tr.append(value, headers);
      rows.prepend(tr);
      while (rows.children.length > 1000) rows.lastChild.remove();
      count += 1;
      status.textContent = count + " new record" + (count === 1 ? "" : "s");
    });
    source.addEventListener("error", () => { status.textContent = "reconnecting..."; });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh][data-source]").forEach(refreshLive);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  const button = document.getElementById("tail");
  if (button && button.dataset.stream) tail(button);
});
