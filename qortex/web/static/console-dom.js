// Building the console's DOM: small helpers that take everything as arguments.

/** An element with attributes (`dataset`, `class`, `on<event>` handled) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function badge(word) {
  return el("span", { class: `badge ${word}` }, word);
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return el("dl", { class: "facts" }, ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}
