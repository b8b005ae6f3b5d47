// Runs the page's own worker.js in a Node worker thread, the way a page runs it
// as a module worker: `self.onmessage` gets {data}, `self.postMessage` answers.
import { parentPort } from "node:worker_threads";

globalThis.self = globalThis;
globalThis.postMessage = (data) => parentPort.postMessage(data);
await import("../../qortex/web/static/worker.js");
// The port holds messages until a listener is attached, so none is lost to the import.
parentPort.on("message", (data) => globalThis.onmessage({ data }));
