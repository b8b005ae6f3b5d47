// A test kind whose compute throws, as a kind meeting input it cannot handle does.
export function compute(input) {
  throw new Error(`cannot compute ${JSON.stringify(input)}`);
}
