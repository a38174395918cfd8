// Runs one page script (argv[2]) in Node with what it uses of a browser: a clock and timers that jump,
// elements, fetch answering the replies given (argv[3], JSON), location.replace. Prints what the script did
// (JSON): each fetch and navigation with the time it happened, and the elements' text. Stops at the first
// navigation, or once the clock passes argv[4] milliseconds.
"use strict";
const fs = require("fs");
const script = fs.readFileSync(process.argv[2], "utf8");
const replies = JSON.parse(process.argv[3]);
const untilMs = Number(process.argv[4]);

let now = 0;
let nextId = 0;
const timers = [];
const events = [];
Date.now = () => now;
global.setTimeout = (f, ms) => { timers.push({ id: ++nextId, at: now + (ms || 0), f }); return nextId; };
global.setInterval = (f, ms) => { timers.push({ id: ++nextId, at: now + ms, every: ms, f }); return nextId; };
global.clearTimeout = global.clearInterval = (id) => {
  const i = timers.findIndex((t) => t.id === id);
  if (i >= 0) timers.splice(i, 1);
};

// the scripts sit in the page's head: they run while the document is "loading", before any element exists
let parsed = false;
const onParsed = [];
const elements = {};
function element(name) {
  return { name, textContent: "", hidden: name === "note", className: "", innerHTML: "", children: [],
           appendChild(child) { this.children.push(child); } };
}
global.document = {
  readyState: "loading",
  getElementById: (id) => (parsed ? elements[id] || (elements[id] = element(id)) : null),
  querySelector: (selector) => (parsed ? elements[selector] || (elements[selector] = element(selector)) : null),
  createElement: (tag) => element(tag),
  addEventListener: (type, f) => { if (type === "DOMContentLoaded") onParsed.push(f); },
};
let navigated = false;
global.location = { replace: (url) => { events.push({ t: now, replace: url }); navigated = true; } };
global.fetch = (url) => {
  events.push({ t: now, fetch: url });
  const reply = replies.shift() || { status: 200, body: { state: "starting" } };
  const headers = reply.headers || {};
  return Promise.resolve({
    status: reply.status,
    headers: { get: (name) => (name in headers ? headers[name] : null) },
    json: () => Promise.resolve(reply.body),
  });
};

const settle = () => new Promise((resolve) => setImmediate(resolve));

(async () => {
  new Function(script)();
  await settle();
  parsed = true;
  document.readyState = "interactive";
  for (const f of onParsed) f();
  await settle();
  while (!navigated) {
    timers.sort((a, b) => a.at - b.at || a.id - b.id);
    const timer = timers.shift();
    if (!timer || timer.at > untilMs) break;
    now = timer.at;
    if (timer.every) { timer.at += timer.every; timers.push(timer); }
    timer.f();
    await settle();
  }
  const text = {};
  for (const [name, el] of Object.entries(elements)) {
    text[name] = { text: el.textContent, hidden: el.hidden, className: el.className,
                   children: el.children.map((c) => c.textContent) };
  }
  console.log(JSON.stringify({ events, elements: text, now }));
})();
