// A test kind that never finishes: only terminating its worker ends it.
export function compute() {
  for (;;);
}
