// Streaming answers: the chat WebSocket (/ws/v1/chat/, session-authenticated) when it is up,
// Server-Sent Events from POST /api/v1/predict {stream: true} when it is not.
//
// `generate(fields, handlers)` starts one answer and returns {cancel()}; exactly one of
// handlers.onDone(event) or handlers.onError(ApiError) ends it, after any number of
// handlers.onToken(text) and handlers.onToolCall({index, id?, name?, arguments}) (pieces of the
// tools the model calls: id and name on a call's first piece only). The connection reconnects by itself and reports its state as
// "statechange" events: connecting, open, reconnecting, fallback (HTTP streaming), signed-out.

import { ApiError, errorFrom, jsonHeaders, networkError } from "./api.js";

const SOCKET_PATH = "/ws/v1/chat/";
const UNAUTHORISED = 4401;
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;
// A socket that has not said "ready" by then counts as failed (proxies that swallow upgrades). Longer
// than the server's own wait for authentication (10 s), so a lapsed session is told apart by 4401.
const READY_TIMEOUT_MS = 15_000;

function disconnected() {
  return new ApiError({ code: "disconnected", message: "The connection was lost while the answer was being written. Reconnecting…" });
}

export class ChatTransport extends EventTarget {
  constructor({ socketUrl } = {}) {
    super();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.socketUrl = socketUrl ?? `${scheme}//${location.host}${SOCKET_PATH}`;
    this.socket = null;
    this.ready = false;
    this.state = "connecting";
    this.current = null; // the WebSocket generation in flight: {handlers}
    this.failures = 0;
    this.retryTimer = null;
    this.readyTimer = null;
    this.stopped = false;
    addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  setState(state, detail = "") {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("statechange", { detail: { state, detail } }));
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    let socket;
    try {
      socket = new WebSocket(this.socketUrl);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.ready = false;
    this.readyTimer = setTimeout(() => socket.close(), READY_TIMEOUT_MS);
    socket.addEventListener("message", (event) => this.onMessage(socket, event));
    socket.addEventListener("close", (event) => this.onClose(socket, event));
  }

  reconnectNow() {
    if (this.stopped || this.state === "signed-out") return;
    if (!this.socket || this.socket.readyState === WebSocket.CLOSED) this.connect();
  }

  scheduleReconnect() {
    if (this.stopped || this.retryTimer) return;
    const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.failures) * (0.75 + Math.random() / 2);
    this.failures += 1;
    // After one failed attempt answers go over HTTP streaming while the socket keeps retrying.
    this.setState(this.failures > 1 ? "fallback" : "reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  onMessage(socket, event) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "ready") {
      clearTimeout(this.readyTimer);
      this.ready = true;
      this.failures = 0;
      this.setState("open");
      return;
    }
    const current = this.current;
    if (!current) {
      if (message.type === "error") this.dispatchEvent(new CustomEvent("servererror", { detail: message.error }));
      return;
    }
    if (message.type === "token") {
      current.handlers.onToken(message.text);
    } else if (message.type === "tool_call") {
      current.handlers.onToolCall?.(message);
    } else if (message.type === "done") {
      this.current = null;
      current.handlers.onDone(message);
    } else if (message.type === "error") {
      this.current = null;
      current.handlers.onError(new ApiError({ code: message.error?.code, message: message.error?.message, field: message.error?.field }));
    }
  }

  onClose(socket, event) {
    if (socket !== this.socket) return;
    clearTimeout(this.readyTimer);
    this.socket = null;
    this.ready = false;
    const current = this.current;
    this.current = null;
    if (event.code === UNAUTHORISED) {
      this.setState("signed-out");
      current?.handlers.onError(new ApiError({ code: "not_authenticated", message: "Your session has ended. Log in again." }));
      return;
    }
    current?.handlers.onError(disconnected());
    this.scheduleReconnect();
  }

  /** Start one answer; see the module comment. */
  generate(fields, handlers) {
    if (this.ready && this.socket?.readyState === WebSocket.OPEN && !this.current) {
      return this.generateOverSocket(fields, handlers);
    }
    return streamOverHttp(fields, handlers);
  }

  generateOverSocket(fields, handlers) {
    const socket = this.socket;
    const generation = { handlers };
    this.current = generation;
    socket.send(JSON.stringify({ type: "generate", ...fields }));
    return {
      transport: "websocket",
      cancel: () => {
        if (this.current === generation && socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({ type: "cancel" })); // the server ends it with done/cancelled
        }
      },
    };
  }
}

/** One answer over Server-Sent Events (POST /api/v1/predict with stream: true). */
export function streamOverHttp(fields, handlers) {
  const controller = new AbortController();
  let finished = false;
  let cancelled = false;
  let produced = 0;
  const finish = (callback, value) => {
    if (finished) return;
    finished = true;
    callback(value);
  };
  (async () => {
    let response;
    try {
      response = await fetch("/api/v1/predict", {
        method: "POST",
        headers: jsonHeaders("POST", { Accept: "text/event-stream" }),
        body: JSON.stringify({ ...fields, stream: true }),
        credentials: "same-origin",
        signal: controller.signal,
      });
    } catch (err) {
      if (cancelled) return;
      finish(handlers.onError, err.name === "AbortError" ? disconnected() : networkError());
      return;
    }
    if (!response.ok) {
      finish(handlers.onError, await errorFrom(response));
      return;
    }
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
          if (!frame) continue;
          if (frame.event === "done") {
            finish(handlers.onDone, { type: "done", ...frame.data });
          } else if (frame.event === "tool_call") {
            produced += 1;
            handlers.onToolCall?.(frame.data);
          } else if (frame.event === "error") {
            finish(handlers.onError, new ApiError({ ...(frame.data.error ?? {}) }));
          } else if (typeof frame.data.delta === "string") {
            produced += 1;
            handlers.onToken(frame.data.delta);
          }
        }
      }
    } catch {
      if (cancelled) return;
    }
    if (!cancelled) finish(handlers.onError, disconnected());
  })();
  return {
    transport: "http",
    cancel: () => {
      if (finished) return;
      cancelled = true;
      controller.abort(); // closing the request cancels the generation on the server
      finish(handlers.onDone, {
        type: "done",
        finish_reason: "cancelled",
        usage: { prompt_tokens: 0, completion_tokens: produced, total_tokens: produced },
      });
    },
  };
}

// One Server-Sent Events frame (the text between two blank lines) as {event, data}; null when it has no JSON data.
export function parseFrame(text) {
  let event = "message";
  const data = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  try {
    return { event, data: JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}
