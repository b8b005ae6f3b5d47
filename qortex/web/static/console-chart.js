// The throughput chart as SVG path data: pure arithmetic, drawn by the page.

/** A rounded-up scale maximum (1, 2, 5 × 10^n) so the axis label reads well. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

/**
 * Path data for each named series of `points` ({at, ...values}) in a
 * `width` × `height` box, time running left to right over `span` seconds ending
 * at the last point. Returns `{ max, paths: {name: "M x y L ..."} }`.
 */
export function chartPaths(points, names, width, height, span = 60) {
  const max = niceMax(Math.max(0, ...points.flatMap((p) => names.map((n) => p[n] || 0))));
  const paths = {};
  const end = points.length ? points[points.length - 1].at : 0;
  for (const name of names) {
    paths[name] = points
      .map((p, i) => {
        const x = width - ((end - p.at) / span) * width;
        const y = height - ((p[name] || 0) / max) * height;
        return `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
      })
      .join(" ");
  }
  return { max, paths };
}
