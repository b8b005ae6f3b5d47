// A test kind that brings its whole worker down, outside compute's own promise.
export function compute() {
  setTimeout(() => {
    throw new Error("the worker crashed");
  });
  return new Promise(() => {});
}
