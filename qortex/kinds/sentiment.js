// The `sentiment` kind for browser miners: exactly the algorithm of the
// docstring of qortex/kinds/sentiment.py (and section 14.1 of
// docs/protocol.md). Any difference is outvoted by the other miners, so
// tests/vectors/sentiment.json is checked against this file in a real browser.

/** Tokens that flip the score of a lexicon word up to two tokens after them. */
export const NEGATORS = new Set([
  "not", "no", "never", "don't", "dont", "isn't", "isnt", "wasn't", "can't", "cant",
  "won't", "didn't", "doesn't", "nothing", "cannot", "nobody", "neither", "nor", "without",
]);

export const NEGATION_WINDOW = 2;

const LINE = /^([a-z]+)\t(-?[0-3])$/;

// A Map, not a plain object: "constructor" is a token too, and an object
// would find it on Object.prototype.
let lexicon = null;

/** Parse the lexicon file as strictly as the coordinator does. */
export function parseLexicon(text) {
  const table = new Map();
  let previous = "";
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, index) => {
    if (line.startsWith("#")) return;
    const match = LINE.exec(line);
    if (match === null) throw new Error(`sentiment lexicon line ${index + 1}: expected word<TAB>score`);
    const [, word, score] = match;
    if (NEGATORS.has(word)) throw new Error(`sentiment lexicon line ${index + 1}: ${word} is a negator`);
    if (word <= previous) throw new Error(`sentiment lexicon line ${index + 1}: ${word} out of order`);
    table.set(word, Number(score));
    previous = word;
  });
  if (table.size === 0) throw new Error("the sentiment lexicon is empty");
  return table;
}

/** Load the lexicon served beside this module (`kinds/sentiment/sentiment_lexicon.txt`). */
export async function init() {
  if (lexicon !== null) return;
  const url = new URL("sentiment/sentiment_lexicon.txt", import.meta.url);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  lexicon = parseLexicon(await response.text());
}

/** Steps 1-2: lowercase, typographic apostrophes, [a-z']+ runs stripped of apostrophes. */
export function tokenize(text) {
  const lowered = text.toLowerCase().replaceAll("\u2019", "'");
  return (lowered.match(/[a-z']+/g) ?? [])
    .map((token) => token.replace(/^'+|'+$/g, ""))
    .filter((token) => token !== "");
}

/** Step 3: the negation-aware sum. */
export function score(tokens, table) {
  let total = 0;
  tokens.forEach((token, i) => {
    const weight = table.get(token);
    if (weight === undefined) return;
    const window = tokens.slice(Math.max(0, i - NEGATION_WINDOW), i);
    total += window.some((t) => NEGATORS.has(t)) ? -weight : weight;
  });
  return total;
}

/** A tweet's label: "positive", "negative" or "neutral". */
export function compute(tweet) {
  if (lexicon === null) throw new Error("sentiment: call init() before compute()");
  if (typeof tweet !== "string") throw new Error("sentiment: the input must be a string (a tweet)");
  const total = score(tokenize(tweet), lexicon);
  return total > 0 ? "positive" : total < 0 ? "negative" : "neutral";
}
