// Server-Sent Events read from a fetch() body, so the API key travels in a
// header (EventSource can only put it in the URL). Pure: text in, events out.

/**
 * A parser for the text/event-stream format. `push(text)` takes the next chunk
 * (any split, even mid-line) and returns the complete events it finished, each
 * `{ id, type, data }` with `data` parsed as JSON; `lastId` is the id to resume from.
 */
export function createSseParser() {
  let buffer = "";
  let current = { id: null, type: "message", data: [] };
  let lastId = null;

  function line(text, out) {
    if (text === "") {
      if (current.data.length) {
        const raw = current.data.join("\n");
        let data;
        try {
          data = JSON.parse(raw);
        } catch {
          data = raw;
        }
        if (current.id !== null) lastId = current.id;
        out.push({ id: current.id, type: current.type, data });
      }
      current = { id: null, type: "message", data: [] };
      return;
    }
    if (text.startsWith(":")) return; // a comment: the server's keepalive
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") current.id = value;
    else if (field === "event") current.type = value;
    else if (field === "data") current.data.push(value);
  }

  return {
    push(text) {
      buffer += text;
      const out = [];
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        if (end === buffer.length - 1 && buffer[end] === "\r") break; // maybe half of \r\n
        const width = buffer.startsWith("\r\n", end) ? 2 : 1;
        line(buffer.slice(0, end), out);
        buffer = buffer.slice(end + width);
      }
      return out;
    },
    get lastId() {
      return lastId;
    },
  };
}
