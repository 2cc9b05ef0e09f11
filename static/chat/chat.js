// The chat page: conversations (list, open, new, rename, delete), streamed answers with Stop,
// the model each conversation talks to (picked from the pool; staff may switch the site's default),
// answers grounded in a document collection with their sources, the model that wrote each answer,
// answers held to JSON or calling tools (shown as cards), feedback and copy on each answer. Talks only to the JSON API and the chat WebSocket.

import { api, errorTitle } from "./api.js";
import { confirmDialog, setBusy } from "./ui.js";
import { renderText } from "./render.js";
import { ChatTransport } from "./transport.js";

const $ = (id) => document.getElementById(id);
const root = $("chat");
const els = {
  sidebar: $("sidebar"),
  backdrop: $("sidebar-backdrop"),
  toggleSidebar: $("toggle-sidebar"),
  newChat: $("new-chat"),
  list: $("conversation-list"),
  listEmpty: $("conversation-empty"),
  title: $("conversation-title"),
  thread: $("thread"),
  emptyState: $("empty-state"),
  announcer: $("announcer"),
  connection: $("connection"),
  modelSelect: $("model-select"),
  providerSelect: $("provider-select"),
  modelLabel: $("model-label"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  useCollection: $("use-collection"),
  collectionSelect: $("collection-select"),
  collectionHint: $("collection-hint"),
  maxTokens: $("opt-max-tokens"),
  temperature: $("opt-temperature"),
  markdown: $("opt-markdown"),
  options: document.querySelector("details.options"),
  format: $("opt-format"),
  schema: $("opt-schema"),
  schemaError: $("opt-schema-error"),
  tools: $("opt-tools"),
  toolsError: $("opt-tools-error"),
  toolChoice: $("opt-tool-choice"),
  template: $("message-template"),
};
const isStaff = root.dataset.staff === "true";
const SVG = "http://www.w3.org/2000/svg";
const transport = new ChatTransport();

const state = {
  conversations: [],
  current: null, // id of the open conversation, null for a new chat
  generation: null, // {cancel} of the answer being written
  messages: [], // rendered messages: {element, role, text, ...}
  models: [], // the models a conversation may pick (GET /api/v1/models, local and remote), the default first
  defaultModel: "", // the id of the model that answers when none is named
  conversationModel: "", // the open conversation's model ('' : the default answers)
  chosenModel: null, // picked here and not sent yet; null : the conversation's (else the default)
};

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  fallback: "Reconnecting · answers over HTTP",
  "signed-out": "Signed out",
};

// --- settings kept in this browser -------------------------------------------------------------
const SETTINGS_KEY = "llmsite.chat.settings";

function loadSettings() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}") ?? {};
  } catch {
    saved = {};
  }
  if (saved.maxTokens) els.maxTokens.value = saved.maxTokens;
  if (saved.temperature !== undefined && saved.temperature !== "") els.temperature.value = saved.temperature;
  if (saved.markdown === false) els.markdown.checked = false;
  if (["text", "json_object", "json_schema"].includes(saved.format)) els.format.value = saved.format;
  if (typeof saved.schema === "string") els.schema.value = saved.schema;
  if (typeof saved.tools === "string") els.tools.value = saved.tools;
  if (["auto", "required", "none"].includes(saved.toolChoice)) els.toolChoice.value = saved.toolChoice;
  showSchemaField();
  return saved;
}

function saveSettings() {
  const settings = {
    maxTokens: els.maxTokens.value,
    temperature: els.temperature.value,
    markdown: els.markdown.checked,
    format: els.format.value,
    schema: els.schema.value,
    tools: els.tools.value,
    toolChoice: els.toolChoice.value,
    collection: els.collectionSelect.value,
    useCollection: els.useCollection.checked,
  };
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // Private browsing: settings last for this page only.
  }
}

// --- messages ----------------------------------------------------------------------------------
function announce(text) {
  els.announcer.textContent = "";
  // A fresh text node so screen readers read it even when the words repeat.
  requestAnimationFrame(() => {
    els.announcer.textContent = text;
  });
}

function scrollToEnd(force = false) {
  const thread = els.thread;
  const nearEnd = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 120;
  if (force || nearEnd) thread.scrollTop = thread.scrollHeight;
}

function createMessage(role, text = "") {
  els.emptyState.hidden = true;
  const element = els.template.content.firstElementChild.cloneNode(true);
  element.classList.add(role);
  element.dataset.role = role;
  element.querySelector(".avatar").textContent = role === "user" ? "You" : "AI";
  element.querySelector(".message-role").textContent = role === "user" ? "You said" : "Assistant";
  const message = {
    element,
    role,
    text,
    content: element.querySelector(".content"),
    meta: element.querySelector(".meta"),
    actions: element.querySelector(".actions"),
    sources: element.querySelector(".sources"),
    toolCallsBox: element.querySelector(".tool-calls"),
    toolCalls: [], // [{id, name, arguments}]: the tools the answer calls, arguments as they arrive
    id: null,
    prompt: "",
    provider: "",
    model: "",
    renderQueued: false,
  };
  state.messages.push(message);
  els.thread.append(element);
  draw(message);
  if (role === "assistant") wireActions(message);
  return message;
}

function draw(message) {
  message.renderQueued = false;
  if (message.role === "assistant") drawToolCalls(message);
  // What people typed is always plain text; answers follow the Markdown setting. An answer that is
  // a whole JSON document (asked for with "Answer as JSON", or written so) is shown indented.
  if (message.role === "assistant" && renderJson(message.content, message.text)) return;
  renderText(message.content, message.text, { markdown: message.role === "assistant" && els.markdown.checked });
}

// --- answers as JSON ---------------------------------------------------------------------------
function showSchemaField() {
  const shown = els.format.value === "json_schema";
  for (const element of document.querySelectorAll(".schema-field")) element.hidden = !shown;
  if (!shown || !els.schemaError.textContent) els.schemaError.hidden = true;
}

/** The response_format to send ({} for free text); null when the schema typed is not JSON (said beside it). */
function responseFormat() {
  els.schemaError.textContent = "";
  els.schemaError.hidden = true;
  if (els.format.value === "json_object") return { response_format: { type: "json_object" } };
  if (els.format.value !== "json_schema") return {};
  let schema;
  try {
    schema = JSON.parse(els.schema.value || "{}");
  } catch (error) {
    els.schemaError.textContent = `The schema is not JSON: ${error.message}`;
    els.schemaError.hidden = false;
    els.options.open = true;
    return null;
  }
  return { response_format: { type: "json_schema", json_schema: { name: "chat_answer", schema } } };
}

/** Show `text` as indented JSON when it is a whole JSON object or array; false otherwise. */
function renderJson(element, text) {
  const trimmed = (text || "").trim();
  if (!(trimmed.startsWith("{") || trimmed.startsWith("[")) || !(trimmed.endsWith("}") || trimmed.endsWith("]"))) {
    return false;
  }
  let value;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return false;
  }
  const pre = document.createElement("pre");
  pre.className = "json-answer";
  const code = document.createElement("code");
  code.textContent = JSON.stringify(value, null, 2);
  pre.append(code);
  element.classList.remove("markdown", "plain");
  element.replaceChildren(pre);
  return true;
}

// --- tool calls ---------------------------------------------------------------------------------
/** The tools fields to send ({} without tools); null when the tools typed are not a JSON array (said beside them). */
function toolFields() {
  els.toolsError.textContent = "";
  els.toolsError.hidden = true;
  const typed = els.tools.value.trim();
  if (!typed) return {};
  let tools;
  let problem = "";
  try {
    tools = JSON.parse(typed);
    if (!Array.isArray(tools)) problem = "The tools are not a JSON array: write [ {\"type\": \"function\", …} ]";
  } catch (error) {
    problem = `The tools are not JSON: ${error.message}`;
  }
  if (problem) {
    els.toolsError.textContent = problem;
    els.toolsError.hidden = false;
    els.options.open = true;
    return null;
  }
  return { tools, tool_choice: els.toolChoice.value };
}

/** Add a streamed piece of a call ({index, id?, name?, arguments}) to the answer's calls. */
function addToolCallPiece(message, piece) {
  const call = (message.toolCalls[piece.index] ??= { id: "", name: "", arguments: "" });
  if (piece.id) call.id = piece.id;
  if (piece.name) call.name = piece.name;
  call.arguments += piece.arguments ?? "";
}

/** Arguments as indented JSON once they parse; as they arrived while they are still being written. */
function argumentsText(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function drawToolCalls(message) {
  const calls = message.toolCalls.filter(Boolean);
  const box = message.toolCallsBox;
  box.hidden = calls.length === 0;
  // An answer that is only calls has no text to show (nor the caret of one being written).
  message.content.hidden = calls.length > 0 && !message.text;
  if (!calls.length) return;
  const cards = calls.map((call) => {
    const card = document.createElement("div");
    card.className = "tool-call";
    card.dataset.name = call.name;
    const head = document.createElement("div");
    head.className = "tool-call-head";
    const label = document.createElement("span");
    label.textContent = "Calls";
    const name = document.createElement("code");
    name.className = "tool-call-name";
    name.textContent = call.name;
    head.append(label, name);
    const pre = document.createElement("pre");
    pre.className = "tool-call-arguments";
    const code = document.createElement("code");
    code.textContent = argumentsText(call.arguments);
    pre.append(code);
    card.append(head, pre);
    return card;
  });
  box.replaceChildren(...cards);
}

/** What Copy copies: the answer's text, else its calls as JSON. */
function copyable(message) {
  if (message.text || !message.toolCalls.length) return message.text;
  const calls = message.toolCalls.filter(Boolean).map((call) => ({ name: call.name, arguments: argumentsText(call.arguments) }));
  return JSON.stringify(calls, null, 2);
}

function queueDraw(message) {
  if (message.renderQueued) return;
  message.renderQueued = true;
  requestAnimationFrame(() => {
    draw(message);
    scrollToEnd();
  });
}

function describe(done) {
  const parts = [];
  const tokens = done.usage?.completion_tokens;
  if (tokens !== undefined) parts.push(`${tokens} token${tokens === 1 ? "" : "s"}`);
  if (done.latency_ms) parts.push(`${(done.latency_ms / 1000).toFixed(1)} s`);
  if (done.cached) parts.push("cached");
  return parts.join(" · ");
}

/** The small label naming the model that wrote an answer (and the one asked for, when a fallback answered). */
function answeredBy(done) {
  const label = document.createElement("span");
  label.className = "answered-by";
  label.textContent = done.model;
  label.title = `Answered by ${done.model}${done.provider ? ` (${done.provider})` : ""}`;
  if (done.fallback?.requested) {
    label.textContent += ` (instead of ${done.fallback.requested})`;
    label.title += `; ${done.fallback.requested} could not answer: ${done.fallback.reason}`;
  }
  return label;
}

function showSources(message, sources) {
  if (!sources?.length) return;
  const box = message.sources;
  box.replaceChildren();
  const heading = document.createElement("p");
  heading.className = "sources-title small";
  heading.textContent = sources.length === 1 ? "Source" : `Sources (${sources.length})`;
  const list = document.createElement("ol");
  for (const source of sources) {
    const item = document.createElement("li");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const name = document.createElement("span");
    name.className = "source-title";
    name.textContent = (source.title || `Document ${source.document_id}`) + (source.page ? `, page ${source.page}` : "");
    // The heading it falls under, when the file said; the score's scale depends on the retrieval mode, so it is only a tooltip.
    const where = document.createElement("span");
    where.className = "muted small";
    where.textContent = source.heading ? ` · ${source.heading}` : "";
    summary.title = `score ${(source.score ?? 0).toFixed(4)}`;
    summary.append(name, where);
    const snippet = document.createElement("p");
    snippet.className = "source-snippet small";
    snippet.textContent = source.snippet ?? "";
    details.append(summary, snippet);
    item.append(details);
    list.append(item);
  }
  box.append(heading, list);
  box.hidden = false;
}

function showError(message, error) {
  const box = document.createElement("div");
  box.className = "error-box";
  box.setAttribute("role", "alert");
  const title = document.createElement("strong");
  title.textContent = errorTitle(error);
  const text = document.createElement("span");
  text.textContent = ` ${error.message}`;
  box.append(title, text);
  if (error.code === "not_authenticated") {
    const link = document.createElement("a");
    link.href = `/accounts/login/?next=${encodeURIComponent(location.pathname + location.hash)}`;
    link.textContent = " Log in";
    box.append(link);
  }
  message.element.querySelector(".message-body").insertBefore(box, message.element.querySelector(".message-footer"));
  message.element.classList.add("failed");
}

// --- copy and feedback -------------------------------------------------------------------------
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (plain HTTP on another host): the old way.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

function flash(button, label) {
  const original = button.getAttribute("aria-label");
  button.classList.add("done");
  button.setAttribute("aria-label", label);
  setTimeout(() => {
    button.classList.remove("done");
    button.setAttribute("aria-label", original);
  }, 1500);
}

function iconButton(name, tooltip, label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "icon-button small-icon";
  button.title = tooltip;
  button.setAttribute("aria-label", label);
  button.append(icon(name));
  button.addEventListener("click", onClick);
  return button;
}

function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

function wireActions(message) {
  const up = message.element.querySelector(".rate-up");
  const down = message.element.querySelector(".rate-down");
  const copy = message.element.querySelector(".copy");
  const form = message.element.querySelector(".feedback-form");
  const comment = form.querySelector("textarea");
  let rating = 0;

  copy.addEventListener("click", async () => {
    const ok = await copyText(copyable(message));
    flash(copy, ok ? "Copied" : "Copy failed");
    announce(ok ? "Answer copied" : "Copy failed");
  });

  const choose = (value) => {
    rating = value;
    up.setAttribute("aria-pressed", String(value === 1));
    down.setAttribute("aria-pressed", String(value === -1));
    form.hidden = false;
    comment.focus();
  };
  up.addEventListener("click", () => choose(1));
  down.addEventListener("click", () => choose(-1));
  form.querySelector(".feedback-cancel").addEventListener("click", () => {
    form.hidden = true;
    up.setAttribute("aria-pressed", "false");
    down.setAttribute("aria-pressed", "false");
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { rating };
    if (comment.value.trim()) body.comment = comment.value;
    if (message.id) {
      body.message = message.id;
    } else {
      // A stopped answer is not stored in the conversation: rate its text instead.
      Object.assign(body, { prompt: message.prompt, response: message.text, provider: message.provider, model: message.model });
    }
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      await api("/api/v1/feedback", { method: "POST", body });
      form.replaceChildren(Object.assign(document.createElement("p"), { className: "small muted thanks", textContent: "Thanks for the feedback." }));
      up.disabled = true;
      down.disabled = true;
      announce("Feedback sent");
    } catch (error) {
      setBusy(submit, false);
      const note = form.querySelector(".form-error") ?? Object.assign(document.createElement("p"), { className: "form-error small" });
      note.setAttribute("role", "alert");
      note.textContent = `${errorTitle(error)}: ${error.message}`;
      form.append(note);
    }
  });
}

function finishMessage(message, done) {
  message.id = done.message ?? null;
  if (message.id) message.element.dataset.messageId = message.id;
  message.provider = done.provider ?? message.provider;
  message.model = done.model ?? message.model;
  if (done.tool_calls?.length) message.toolCalls = done.tool_calls.map((call) => ({ ...call }));
  message.element.removeAttribute("aria-busy");
  message.element.classList.remove("streaming");
  draw(message);
  let description = describe(done);
  if (done.finish_reason === "length") description = [description, "cut at the token limit"].filter(Boolean).join(" · ");
  const parts = [];
  if (done.finish_reason === "cancelled") {
    message.element.classList.add("stopped");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "Stopped";
    parts.push(badge, " ");
  }
  if (done.model) parts.push(answeredBy(done));
  if (description) parts.push(done.model ? ` · ${description}` : description);
  message.meta.replaceChildren(...parts);
  showSources(message, done.sources);
  message.actions.hidden = !message.text && !message.toolCalls.length;
}

let shownModel = null; // {provider, model}: the site's default, as the toolbar shows it

function noteAnswerModel(done, followedDefault) {
  // Staff may switch the site's model from another tab: keep the toolbar true to what answered.
  const other = done.model && shownModel && (done.model !== shownModel.model || done.provider !== shownModel.provider);
  if (followedDefault && other && !done.fallback) {
    loadProviders();
  }
  loadModels(); // what answered is loaded now (and another may have been unloaded to make room)
}

// --- sending -----------------------------------------------------------------------------------
function setGenerating(on) {
  els.send.hidden = on;
  els.stop.hidden = !on;
  els.composer.classList.toggle("generating", on);
}

function requestFields(prompt) {
  const fields = { prompt, conversation: state.current };
  const maxTokens = Number.parseInt(els.maxTokens.value, 10);
  if (Number.isFinite(maxTokens) && maxTokens > 0) fields.max_new_tokens = maxTokens;
  if (els.temperature.value !== "") {
    const temperature = Number.parseFloat(els.temperature.value);
    if (Number.isFinite(temperature)) fields.temperature = temperature;
  }
  if (els.useCollection.checked && els.collectionSelect.value) {
    fields.collection = els.collectionSelect.value;
  }
  const model = modelToSend();
  if (model) fields.model = model;
  return { ...fields, ...responseFormat(), ...toolFields() };
}

async function send() {
  const prompt = els.prompt.value;
  if (!prompt.trim() || state.generation) return;
  if (responseFormat() === null) return; // the schema is not JSON: said beside it, and the prompt stays
  if (toolFields() === null) return; // nor are the tools
  els.prompt.value = "";
  autoGrow();
  const question = createMessage("user", prompt);
  const answer = createMessage("assistant");
  answer.prompt = prompt;
  answer.element.classList.add("streaming");
  answer.element.setAttribute("aria-busy", "true");
  scrollToEnd(true);
  setGenerating(true);
  let stoppedEarly = false; // Stop pressed while the conversation was being created
  state.generation = {
    cancel: () => {
      stoppedEarly = true;
    },
  };

  if (state.current === null) {
    try {
      const created = await api("/api/v1/conversations", { method: "POST", body: {} });
      state.current = created.id;
      history.replaceState(null, "", `#conversation-${created.id}`);
      // Listed at once under its first words; the server names it the same way when the answer is stored.
      const title = prompt.trim().split(/\s+/).join(" ").slice(0, 80);
      state.conversations.unshift({ ...created, title });
      renderConversationList();
      setTitle(title);
    } catch (error) {
      endGeneration();
      showError(answer, error);
      question.element.classList.add("unsent");
      return;
    }
  }

  if (stoppedEarly) {
    endGeneration();
    finishMessage(answer, { finish_reason: "cancelled" });
    return;
  }
  const fields = requestFields(prompt);
  const followedDefault = !fields.model && !state.conversationModel;
  const conversation = state.current;
  let received = false;
  state.generation = transport.generate(fields, {
    onToken(text) {
      if (!received) {
        received = true;
        answer.element.classList.add("receiving");
      }
      answer.text += text;
      queueDraw(answer);
    },
    onToolCall(piece) {
      if (!received) {
        received = true;
        answer.element.classList.add("receiving");
      }
      addToolCallPiece(answer, piece);
      queueDraw(answer);
    },
    onDone(done) {
      endGeneration();
      finishMessage(answer, done);
      if (fields.model && done.message && state.current === conversation) {
        // The stored turn named it: the conversation talks to it from now on.
        state.conversationModel = fields.model;
        state.chosenModel = null;
      }
      noteAnswerModel(done, followedDefault);
      announce(done.finish_reason === "cancelled" ? "Stopped" : "Answer ready");
      refreshConversations();
    },
    onError(error) {
      endGeneration();
      answer.element.removeAttribute("aria-busy");
      answer.element.classList.remove("streaming");
      draw(answer);
      showError(answer, error);
      answer.actions.hidden = !answer.text;
      announce(`${errorTitle(error)}: ${error.message}`);
      if (error.code === "not_authenticated") setConnection("signed-out");
    },
  });
  answer.element.dataset.transport = state.generation.transport;
}

function endGeneration() {
  state.generation = null;
  setGenerating(false);
}

function stop() {
  state.generation?.cancel();
}

function autoGrow() {
  const area = els.prompt;
  area.style.height = "auto";
  area.style.height = `${Math.min(area.scrollHeight, 240)}px`;
}

// --- conversations -----------------------------------------------------------------------------
function conversationIdFromHash() {
  const match = /^#conversation-(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function setTitle(title) {
  els.title.textContent = title || "New chat";
  document.title = `${title || "Chat"} · llmsite`;
}

async function refreshConversations() {
  try {
    const page = await api("/api/v1/conversations?limit=100");
    state.conversations = page.results;
  } catch (error) {
    if (error.code === "not_authenticated") setConnection("signed-out");
    return;
  }
  renderConversationList();
  const open = state.conversations.find((c) => c.id === state.current);
  if (open) {
    setTitle(open.title);
    setConversationModel(open.model);
  }
}

function renderConversationList() {
  els.list.replaceChildren();
  els.listEmpty.hidden = state.conversations.length > 0;
  for (const conversation of state.conversations) {
    const item = document.createElement("li");
    item.className = "conversation";
    item.dataset.id = conversation.id;
    const open = document.createElement("a");
    open.className = "conversation-open";
    open.href = `#conversation-${conversation.id}`;
    open.textContent = conversation.title || "Untitled";
    if (conversation.id === state.current) open.setAttribute("aria-current", "page");
    const rename = iconButton("pencil", "Rename", `Rename “${open.textContent}”`, () => startRename(item, conversation));
    const remove = iconButton("trash", "Delete", `Delete “${open.textContent}”`, () => deleteConversation(conversation));
    item.append(open, rename, remove);
    els.list.append(item);
  }
}

function startRename(item, conversation) {
  const input = document.createElement("input");
  input.type = "text";
  input.className = "rename-input";
  input.value = conversation.title;
  input.maxLength = 200;
  input.setAttribute("aria-label", "New title");
  item.replaceChildren(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      try {
        await api(`/api/v1/conversations/${conversation.id}`, { method: "PATCH", body: { title } });
      } catch (error) {
        announce(`${errorTitle(error)}: ${error.message}`);
      }
    }
    await refreshConversations();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}

async function deleteConversation(conversation) {
  const ok = await confirmDialog({
    title: "Delete this conversation?",
    text: `“${conversation.title || "Untitled"}” and all its messages will be deleted.`,
    confirm: "Delete",
  });
  if (!ok) return;
  try {
    await api(`/api/v1/conversations/${conversation.id}`, { method: "DELETE" });
  } catch (error) {
    if (error.code !== "not_found") {
      announce(`${errorTitle(error)}: ${error.message}`);
      return;
    }
  }
  if (state.current === conversation.id) newChat();
  await refreshConversations();
  announce("Conversation deleted");
}

function clearThread() {
  state.generation?.cancel();
  state.messages = [];
  els.thread.replaceChildren(els.emptyState);
  els.emptyState.hidden = false;
}

function newChat() {
  clearThread();
  state.current = null;
  setTitle("");
  state.chosenModel = null;
  setConversationModel("");
  if (location.hash) history.replaceState(null, "", location.pathname);
  renderConversationList();
  closeSidebar();
  els.prompt.focus();
}

async function openConversation(id) {
  if (state.generation) stop();
  let conversation;
  try {
    conversation = await api(`/api/v1/conversations/${id}`);
  } catch (error) {
    newChat();
    const notice = createMessage("assistant");
    showError(notice, error.code === "not_found" ? { ...error, message: "That conversation does not exist (any more)." } : error);
    return;
  }
  clearThread();
  state.current = conversation.id;
  setTitle(conversation.title);
  state.chosenModel = null;
  setConversationModel(conversation.model);
  let lastPrompt = "";
  for (const stored of conversation.messages) {
    if (stored.role === "system") continue;
    const message = createMessage(stored.role, stored.content);
    if (stored.role === "user") {
      lastPrompt = stored.content;
    } else {
      message.prompt = lastPrompt;
      finishMessage(message, {
        message: stored.id,
        provider: stored.provider,
        model: stored.model,
        usage: stored.completion_tokens === null ? undefined : { completion_tokens: stored.completion_tokens },
        finish_reason: stored.finish_reason,
        tool_calls: stored.tool_calls,
        sources: stored.sources, // kept with the answer, so a reopened conversation shows them again
      });
    }
  }
  renderConversationList();
  closeSidebar();
  scrollToEnd(true);
}

// --- the model picker: which model answers in this conversation ---------------------------------
const PICKABLE = new Set(["local", "remote"]);

/** The id the picker shows: picked here, else the conversation's, else the site's default. */
function selectedModel() {
  return state.chosenModel ?? (state.conversationModel || state.defaultModel);
}

/** The `model` to send with the next turn; null when the server would pick the same one anyway. */
function modelToSend() {
  const chosen = state.chosenModel;
  if (chosen === null || chosen === (state.conversationModel || state.defaultModel)) return null;
  return chosen;
}

function setConversationModel(model) {
  state.conversationModel = model ?? "";
  renderModelPicker();
}

async function loadModels() {
  let body;
  try {
    body = await api("/api/v1/models");
  } catch (error) {
    if (!state.models.length) {
      // No list: the toolbar names the site's model instead, and every turn goes to the conversation's.
      els.modelSelect.hidden = true;
      els.modelLabel.hidden = isStaff;
    }
    return;
  }
  state.models = body.data.filter((row) => PICKABLE.has(row.kind));
  state.defaultModel = state.models.find((row) => row.default)?.id ?? "";
  renderModelPicker();
}

function modelOptionLabel(row) {
  return [row.id, row.default ? "default" : "", row.state].filter(Boolean).join(" · ");
}

function renderModelPicker() {
  const select = els.modelSelect;
  if (!state.models.length) return;
  const current = selectedModel();
  const options = state.models.map((row) => {
    const option = new Option(modelOptionLabel(row), row.id);
    if (row.state === "unavailable") {
      option.disabled = true;
      option.title = row.reason || "unavailable";
    }
    return option;
  });
  if (current && !state.models.some((row) => row.id === current)) {
    // The conversation's model is not served any more: say so, and let another be picked.
    const gone = new Option(`${current} · not available`, current);
    gone.disabled = true;
    gone.title = "This model is not served any more: pick another one";
    options.push(gone);
  }
  select.replaceChildren(...options);
  select.value = current;
  const row = state.models.find((m) => m.id === current);
  const problem = row?.state === "unavailable" ? row.reason || "unavailable" : row || !current ? "" : "not available";
  select.title = problem ? `${current}: ${problem}` : "The model that answers in this conversation";
  select.classList.toggle("warning", Boolean(problem));
  select.disabled = false;
  select.hidden = false;
}

function pickModel() {
  state.chosenModel = els.modelSelect.value;
  renderModelPicker();
  announce(`${state.chosenModel} answers your next message`);
}

// --- the site's default model and collections ---------------------------------------------------
async function loadProviders() {
  let body;
  try {
    body = await api("/api/v1/providers");
  } catch (error) {
    els.modelLabel.hidden = false;
    els.modelLabel.textContent = "Model unknown";
    els.modelLabel.title = error.message;
    return;
  }
  const active = body.active;
  shownModel = { provider: active.provider, model: active.model };
  const label = `${active.model} · ${active.provider}`;
  const problem = active.state === "failed" ? `unavailable: ${active.reason}` : active.state === "loading" ? "loading…" : "";
  els.modelLabel.textContent = problem ? `${label} (${problem})` : label;
  els.modelLabel.title = problem || "The model that answers";
  els.modelLabel.classList.toggle("warning", Boolean(problem));
  if (!isStaff) return;
  const select = els.providerSelect;
  select.replaceChildren();
  for (const provider of body.providers) {
    const group = document.createElement("optgroup");
    group.label = provider.available ? provider.name : `${provider.name} (${provider.reason})`;
    const models = provider.models.length ? provider.models : [{ name: provider.active ? active.model : "", detail: "" }];
    for (const model of models) {
      if (!model.name) continue;
      const option = document.createElement("option");
      option.value = JSON.stringify({ provider: provider.name, model: model.name });
      option.textContent = `${model.name} · ${provider.name}`;
      option.disabled = !provider.available;
      option.selected = provider.name === active.provider && model.name === active.model;
      group.append(option);
    }
    if (group.children.length) select.append(group);
  }
  if (![...select.options].some((o) => o.selected)) {
    const option = document.createElement("option");
    option.value = JSON.stringify({ provider: active.provider, model: active.model });
    option.textContent = label;
    option.selected = true;
    select.prepend(option);
  }
  select.disabled = false;
  select.title = problem ? `Active model for the whole site: ${problem}` : "Active model for the whole site (staff)";
  select.classList.toggle("warning", Boolean(problem));
}

async function switchProvider() {
  const select = els.providerSelect;
  const choice = JSON.parse(select.value);
  select.disabled = true;
  els.connection.dataset.state = "busy";
  announce(`Switching the site to ${choice.model}…`);
  try {
    await api("/api/v1/providers/active", { method: "POST", body: choice });
    announce(`The site now answers with ${choice.model}`);
  } catch (error) {
    const notice = createMessage("assistant");
    showError(notice, error);
  } finally {
    setConnection(transport.state);
    await Promise.allSettled([loadProviders(), loadModels()]);
  }
}

async function loadCollections(saved) {
  let body;
  try {
    body = await api("/api/v1/embed/collections");
  } catch {
    return;
  }
  const select = els.collectionSelect;
  select.replaceChildren();
  const usable = body.results.filter((c) => c.documents > 0 || c.mine);
  for (const collection of usable) {
    const option = document.createElement("option");
    option.value = collection.name;
    const owner = collection.mine ? "" : ` (shared by ${collection.owner})`;
    option.textContent = `${collection.name}${owner} · ${collection.documents} doc${collection.documents === 1 ? "" : "s"}`;
    select.append(option);
  }
  const any = usable.length > 0;
  els.useCollection.disabled = !any;
  els.collectionHint.hidden = any;
  select.hidden = !any;
  if (saved?.collection && usable.some((c) => c.name === saved.collection)) select.value = saved.collection;
  els.useCollection.checked = any && Boolean(saved?.useCollection);
  select.disabled = !els.useCollection.checked;
}

// --- connection and layout ----------------------------------------------------------------------
function setConnection(connectionState) {
  els.connection.dataset.state = connectionState;
  els.connection.textContent = CONNECTION_LABELS[connectionState] ?? connectionState;
}

function openSidebar() {
  els.sidebar.classList.add("open");
  els.backdrop.hidden = false;
  els.toggleSidebar.setAttribute("aria-expanded", "true");
  els.sidebar.querySelector("a, button")?.focus();
}

function closeSidebar() {
  if (!els.sidebar.classList.contains("open")) return;
  els.sidebar.classList.remove("open");
  els.backdrop.hidden = true;
  els.toggleSidebar.setAttribute("aria-expanded", "false");
}

function wire() {
  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  els.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  els.prompt.addEventListener("input", autoGrow);
  els.stop.addEventListener("click", stop);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (state.generation) {
      stop();
    } else if (els.sidebar.classList.contains("open")) {
      closeSidebar();
      els.toggleSidebar.focus();
    }
  });
  els.newChat.addEventListener("click", newChat);
  els.toggleSidebar.addEventListener("click", () => (els.sidebar.classList.contains("open") ? closeSidebar() : openSidebar()));
  els.backdrop.addEventListener("click", closeSidebar);
  window.addEventListener("hashchange", () => {
    const id = conversationIdFromHash();
    if (id !== null && id !== state.current) openConversation(id);
  });
  els.useCollection.addEventListener("change", () => {
    els.collectionSelect.disabled = !els.useCollection.checked;
    saveSettings();
  });
  for (const input of [els.collectionSelect, els.maxTokens, els.temperature, els.schema, els.tools, els.toolChoice]) {
    input.addEventListener("change", saveSettings);
  }
  els.format.addEventListener("change", () => {
    showSchemaField();
    saveSettings();
  });
  els.markdown.addEventListener("change", () => {
    saveSettings();
    for (const message of state.messages) draw(message);
  });
  els.modelSelect.addEventListener("change", pickModel);
  els.providerSelect?.addEventListener("change", switchProvider);
}

async function main() {
  const saved = loadSettings();
  transport.addEventListener("statechange", (event) => setConnection(event.detail.state));
  transport.addEventListener("servererror", (event) => announce(event.detail?.message ?? "Server error"));
  wire();
  transport.start();
  els.prompt.focus();
  const id = conversationIdFromHash();
  const opened = refreshConversations().then(() => (id === null ? null : openConversation(id)));
  await Promise.allSettled([loadProviders(), loadModels(), loadCollections(saved), opened]);
  root.dataset.ready = "true"; // everything the page shows first has arrived
}

main();
