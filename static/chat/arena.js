// The chat page's compare mode: one prompt, two anonymous models answering side by side (POST
// /api/v1/arena/battles as Server-Sent Events), a vote once both have finished, then the names.
// Its own module: chat.js knows nothing of it; the page only has a toggle button and the pane
// (templates/chat/_arena.html). The answers are shown as plain text (textContent), never as HTML.

import { ApiError, api, errorFrom, errorTitle, jsonHeaders, networkError } from "./api.js";
import { parseFrame } from "./transport.js";

const $ = (id) => document.getElementById(id);
const chat = $("chat");
const pane = $("arena-pane");
const toggle = $("compare-toggle");
const form = $("arena-composer");
const promptInput = $("arena-prompt");
const send = $("arena-send");
const stopButton = $("arena-stop");
const columns = $("arena-columns");
const promptShown = $("arena-prompt-shown");
const voteBar = $("arena-vote");
const result = $("arena-result");
const scrollArea = $("arena-scroll");

const VOTE_WORDS = { a: "You preferred A.", b: "You preferred B.", tie: "You called it a tie.", both_bad: "You found both bad." };

let battle = null; // {id, controller, ended: {a, b}, failed: {a, b}, texts: {a, b}}

function side(name) {
  const element = columns.querySelector(`.arena-answer[data-side="${name}"]`);
  return {
    element,
    label: element.querySelector(".arena-label"),
    text: element.querySelector(".arena-text"),
    status: element.querySelector(".arena-side-status"),
  };
}

function setMode(on) {
  pane.hidden = !on;
  chat.classList.toggle("comparing", on);
  toggle.setAttribute("aria-pressed", String(on));
  if (on) {
    promptInput.focus();
    if (location.hash !== "#compare") history.replaceState(null, "", "#compare");
  } else if (location.hash === "#compare") {
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function setRunning(on) {
  send.hidden = on;
  stopButton.hidden = !on;
  promptInput.disabled = on;
  pane.dataset.state = on ? "running" : battle?.id ? "finished" : "idle";
}

function reset(prompt) {
  promptShown.textContent = prompt;
  promptShown.hidden = false;
  columns.hidden = false;
  voteBar.hidden = true;
  result.hidden = true;
  for (const name of ["a", "b"]) {
    const s = side(name);
    s.label.textContent = `Model ${name.toUpperCase()}`;
    s.text.textContent = "";
    s.status.textContent = "Writing…";
    s.element.classList.remove("is-error", "is-winner");
  }
  for (const button of voteBar.querySelectorAll("button")) button.disabled = false;
}

// Shown without the blank lines models often open or close with (the answer itself is kept as written).
function showText(name) {
  const s = side(name);
  const shown = battle.texts[name].trim();
  s.text.textContent = shown || (battle.ended[name] ? "(nothing but blank space)" : "");
  s.text.classList.toggle("is-blank", !shown);
}

function sideEnded(name, message, failed) {
  battle.ended[name] = true;
  showText(name);
  battle.failed[name] = failed;
  const s = side(name);
  s.status.textContent = message;
  s.element.classList.toggle("is-error", failed);
  if (battle.ended.a && battle.ended.b) bothEnded();
}

function bothEnded() {
  setRunning(false);
  if (battle.failed.a || battle.failed.b) {
    result.textContent = "An answer failed, so there is nothing to vote on. Try again.";
    result.hidden = false;
    return;
  }
  voteBar.hidden = false;
  voteBar.querySelector("button").focus({ preventScroll: true });
  scrollArea.scrollTop = scrollArea.scrollHeight;
}

function handle(frame) {
  const { event, data } = frame;
  if (event === "battle") {
    battle.id = data.id;
    pane.dataset.battle = String(data.id);
  } else if (event === "token") {
    battle.texts[data.side] += data.text;
    showText(data.side);
  } else if (event === "done") {
    sideEnded(data.side, data.finish_reason === "length" ? "Done (length limit)." : "Done.", false);
  } else if (event === "error") {
    const error = new ApiError(data.error ?? {});
    sideEnded(data.side, `${errorTitle(error)}: ${error.message}`, true);
  }
}

function failAll(error) {
  setRunning(false);
  columns.hidden = true;
  result.textContent = `${errorTitle(error)}: ${error.message}`;
  result.hidden = false;
}

async function compare() {
  const prompt = promptInput.value.trim();
  if (!prompt || battle?.controller) return;
  const controller = new AbortController();
  battle = { id: null, controller, ended: { a: false, b: false }, failed: { a: false, b: false }, texts: { a: "", b: "" } };
  reset(prompt);
  setRunning(true);
  let response;
  try {
    response = await fetch("/api/v1/arena/battles", {
      method: "POST",
      headers: jsonHeaders("POST", { Accept: "text/event-stream" }),
      body: JSON.stringify({ prompt, stream: true }),
      credentials: "same-origin",
      signal: controller.signal,
    });
  } catch (err) {
    battle.controller = null;
    if (err.name !== "AbortError") failAll(networkError());
    return;
  }
  if (!response.ok) {
    battle.controller = null;
    failAll(await errorFrom(response));
    return;
  }
  promptInput.value = "";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (frame) handle(frame);
      }
    }
  } catch {
    // Aborted (Stop) or the connection dropped: the sides still open are marked below.
  }
  battle.controller = null;
  for (const name of ["a", "b"]) {
    if (!battle.ended[name]) sideEnded(name, "Stopped.", true);
  }
}

async function vote(choice) {
  if (!battle?.id) return;
  for (const button of voteBar.querySelectorAll("button")) button.disabled = true;
  try {
    const shown = await api(`/api/v1/arena/battles/${battle.id}/vote`, { method: "POST", body: { vote: choice } });
    for (const name of ["a", "b"]) {
      const s = side(name);
      const model = document.createElement("span");
      model.className = "arena-model";
      model.textContent = ` · ${shown[`model_${name}`]}`;
      s.label.append(model);
      s.element.classList.toggle("is-winner", choice === name);
    }
    voteBar.hidden = true;
    result.textContent = `${VOTE_WORDS[choice]} Model A was ${shown.model_a}, model B was ${shown.model_b}.`;
    result.hidden = false;
    pane.dataset.state = "voted";
    promptInput.focus();
  } catch (error) {
    for (const button of voteBar.querySelectorAll("button")) button.disabled = false;
    result.textContent = `${errorTitle(error)}: ${error.message}`;
    result.hidden = false;
  }
}

function wire() {
  toggle.addEventListener("click", () => setMode(pane.hidden));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    compare();
  });
  promptInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      compare();
    }
  });
  stopButton.addEventListener("click", () => battle?.controller?.abort()); // closing the stream cancels both
  for (const button of voteBar.querySelectorAll("button[data-vote]")) {
    button.addEventListener("click", () => vote(button.dataset.vote));
  }
  window.addEventListener("hashchange", () => setMode(location.hash === "#compare"));
  if (location.hash === "#compare") setMode(true);
  pane.dataset.state = "idle";
}

if (pane && toggle) wire();
