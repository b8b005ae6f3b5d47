// The console's calls to the API and its event stream, with the key in a header.

import { createSseParser } from "./console-sse.js";

const RETRY_MS = 2000;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls to the API with the key in a header; every URL relative to the page. */
export function createApi(key) {
  async function call(method, path, body) {
    const headers = { "x-api-key": key };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(new URL(path, document.baseURI), {
      method,
      headers,
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        message = (await response.json()).message || message;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(response.status, message);
    }
    return response;
  }
  return {
    key,
    get: async (path) => (await call("GET", path)).json(),
    post: async (path) => (await call("POST", path)).json(),
    patch: async (path, body) => (await call("PATCH", path, body)).json(),
    blob: async (path) => (await call("GET", path)).blob(),
    stream: (signal, lastId) =>
      fetch(new URL("api/v1/events", document.baseURI), {
        headers: lastId ? { "x-api-key": key, "last-event-id": lastId } : { "x-api-key": key },
        cache: "no-store",
        signal,
      }),
  };
}

/**
 * Follow the event stream until `signal` aborts, from just after event `from`
 * (null: from now on), resuming after drops with Last-Event-ID.
 */
export async function follow(api, from, signal, onEvents, onState) {
  let lastId = from === null ? null : String(from);
  while (!signal.aborted) {
    try {
      const response = await api.stream(signal, lastId);
      if (response.status === 401) {
        onState("unauthorized");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      onState("on");
      const parser = createSseParser();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const events = parser.push(value);
        if (parser.lastId !== null) lastId = parser.lastId;
        if (events.length) onEvents(events);
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    onState("retry");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}
