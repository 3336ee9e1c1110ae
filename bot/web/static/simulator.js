// The simulator page: sends what is typed to /api/simulator/messages and shows the replies
// as the chosen phone would. Every string shown comes translated from the server.
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const s = config.strings;
const $ = (id) => document.getElementById(id);

$("title").textContent = s.title;
$("intro").textContent = s.intro;
$("style-label").textContent = s.style;
$("style-sms").textContent = s.sms;
$("style-telegram").textContent = s.telegram;
$("language-label").textContent = s.language;
$("restart").textContent = s.restart;
$("text").placeholder = s.placeholder;
$("send").textContent = s.send;
if (config.live) {
  $("live").textContent = s.live;
  $("live").hidden = false;
}
for (const lang of config.languages) {
  const option = new Option(lang.name, lang.code, false, lang.code === config.locale);
  $("language").add(option);
}

const newUser = () => "sim-" + crypto.randomUUID();
let user = newUser();

function bubble(text, who, direction) {
  const div = document.createElement("div");
  div.className = "bubble " + who;
  div.textContent = text;
  if (direction) div.dir = direction;
  $("log").append(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

async function send(payload, shown) {
  bubble(shown, "me");
  const style = $("style").value;
  const body = {
    user, channel: style, language_code: $("language").value,
    message_id: crypto.randomUUID(), ...payload,
  };
  let answer = null;
  // Retry once with the same message_id: the server answers a repeat without acting twice.
  for (let attempt = 0; attempt < 2 && answer === null; attempt++) {
    try {
      const response = await fetch("/api/simulator/messages", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (response.ok) answer = await response.json();
      else if (response.status < 500) break;
    } catch (_) { /* network error: retry */ }
  }
  if (answer === null) { bubble(s.failed, "error"); return; }
  for (const reply of answer.replies) {
    const div = bubble(reply.text, "bot " + style, reply.direction);
    if (reply.choices.length) {
      const row = document.createElement("div");
      row.className = "choices";
      for (const choice of reply.choices) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = choice.label;
        button.addEventListener("click", () => send({ choice: choice.id }, choice.label));
        row.append(button);
      }
      div.append(row);
    }
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  $("text").value = "";
  send({ text }, text);
});
$("restart").addEventListener("click", () => { user = newUser(); $("log").replaceChildren(); });
