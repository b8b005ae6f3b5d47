// One compute worker (a module worker): runs one microtask at a time so the
// page, its socket and its heartbeats stay responsive.
//
// in:  {type: "run", id, kind, input, base}   base: the coordinator URL, ending in "/"
// out: {type: "done", id, output}              output: the JSON text of the output value
//      {type: "error", id, message}
//
// A kind's module is imported from `kinds/<name>.js` beside the page the first
// time the kind is needed; its optional `init()` runs once, then `compute(input)`
// runs for every microtask. To abort work the page terminates the worker.

const modules = new Map(); // kind name -> Promise<module>, ready to compute

function load(base, kind) {
  let ready = modules.get(kind);
  if (ready === undefined) {
    ready = (async () => {
      const url = new URL("kinds/" + encodeURIComponent(kind) + ".js", base);
      const module = await import(url.href);
      if (typeof module.compute !== "function") throw new Error(`${url} exports no compute()`);
      if (typeof module.init === "function") await module.init();
      return module;
    })();
    // A module that failed to load (coordinator away, say) is tried again next time.
    ready.catch(() => modules.delete(kind));
    modules.set(kind, ready);
  }
  return ready;
}

self.onmessage = async ({ data }) => {
  if (data?.type !== "run") return;
  const { id } = data;
  try {
    const module = await load(data.base, data.kind);
    const output = JSON.stringify(await module.compute(data.input));
    if (typeof output !== "string") throw new Error(`${data.kind}.compute returned no JSON value`);
    self.postMessage({ type: "done", id, output });
  } catch (error) {
    self.postMessage({ type: "error", id, message: String(error?.message ?? error) });
  }
};
