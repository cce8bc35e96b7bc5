// The put chart: throughput against writes in flight, one line per engine, log–log, as a hand-written SVG.

import * as B from "./lib.ts";
import * as R from "./report.ts";

/** Wide enough for the longest legend entry, the JS group-commit limit's name. */
const WIDTH = 1000;
const HEIGHT = 470;
const PLOT = { left: 78, right: 590, top: 64, bottom: 400 };
const FONT = "font-family='system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif'";
/** Peers in order of appearance; HarmonyDB and the baselines have fixed styles. */
const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2", "#bcbd22"];
/** Baselines: grey dashes for the disk (raw logs), black for the JS ceilings. */
const BASELINE_STYLES: Record<string, { color: string; dash: string }> = {
  "raw-overwrite": { color: "#444444", dash: "7 4" },
  "raw-append": { color: "#999999", dash: "7 4" },
  [R.JS_GROUP_COMMIT]: { color: "#000000", dash: "10 3 2 3" },
  [R.JS_FLOOR]: { color: "#000000", dash: "2 3" },
};

interface Series {
  name: string;
  color: string;
  width: number;
  dash: string;
  points: { x: number; y: number }[];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** 1000 → "1k", 1000000 → "1M". */
function tickLabel(v: number): string {
  return v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v);
}

/** One series per engine with a median at some level of puts in flight. */
function series(measures: readonly R.Measure[]): Series[] {
  const byEngine = new Map<string, R.Measure[]>();
  for (const m of measures) {
    if (!m.workload.startsWith("put@") || m.runs.length === 0) continue;
    byEngine.set(m.engine, [...(byEngine.get(m.engine) ?? []), m]);
  }
  // HarmonyDB first in the legend, then the peers as measured, then the baselines.
  const rank = (id: string) => (id === R.SUBJECT ? 0 : R.isBaseline(id) ? 2 : 1);
  const ordered = [...byEngine.values()].sort((a, b) => rank(a[0]!.engine) - rank(b[0]!.engine));
  let peer = 0;
  return ordered.map((ms) => {
    const first = ms[0]!;
    const baseline = BASELINE_STYLES[first.engine];
    const subject = first.engine === R.SUBJECT;
    const color = subject ? "#d62728" : (baseline?.color ?? PALETTE[peer++ % PALETTE.length]!);
    return {
      name: R.displayName(first),
      color,
      width: subject ? 3.5 : 2,
      dash: baseline?.dash ?? (first.durable ? "" : "2 4"),
      points: ms.map((m) => ({ x: Number(m.workload.slice(4)), y: B.median(m.runs) })).sort((a, b) => a.x - b.x),
    };
  });
}

/** A log-scale y axis from the decade at or below `lo` to the decade at or above `hi`. */
function logAxis(lo: number, hi: number, from: number, to: number) {
  const min = Math.floor(Math.log10(lo));
  const max = Math.max(min + 1, Math.ceil(Math.log10(hi)));
  return { min, max, at: (v: number) => from + ((Math.log10(v) - min) / (max - min)) * (to - from) };
}

function axes(levels: readonly number[], yMin: number, yMax: number, x: (v: number) => number, y: (v: number) => number): string[] {
  const out: string[] = [];
  for (let d = yMin; d <= yMax; d++) {
    const v = 10 ** d;
    out.push(`<line x1='${PLOT.left}' x2='${PLOT.right}' y1='${y(v)}' y2='${y(v)}' stroke='#d0d0d0'/>`);
    out.push(`<text x='${PLOT.left - 8}' y='${y(v) + 4}' text-anchor='end'>${tickLabel(v)}</text>`);
    if (d === yMax) break;
    for (let k = 2; k <= 9; k++) {
      const yy = y(k * v);
      out.push(`<line x1='${PLOT.left}' x2='${PLOT.right}' y1='${yy}' y2='${yy}' stroke='#f0f0f0'/>`);
      out.push(`<line x1='${PLOT.left - 4}' x2='${PLOT.left}' y1='${yy}' y2='${yy}' stroke='#888'/>`);
    }
  }
  for (const n of levels) {
    out.push(`<line x1='${x(n)}' x2='${x(n)}' y1='${PLOT.top}' y2='${PLOT.bottom}' stroke='#e4e4e4'/>`);
    out.push(`<text x='${x(n)}' y='${PLOT.bottom + 18}' text-anchor='middle'>${n}</text>`);
  }
  out.push(`<rect x='${PLOT.left}' y='${PLOT.top}' width='${PLOT.right - PLOT.left}' height='${PLOT.bottom - PLOT.top}' fill='none' stroke='#888'/>`);
  out.push(`<text x='${(PLOT.left + PLOT.right) / 2}' y='${PLOT.bottom + 40}' text-anchor='middle'>puts in flight (log scale)</text>`);
  out.push(`<text transform='translate(20 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)' text-anchor='middle'>puts/s, median of runs (log scale)</text>`);
  return out;
}

function lines(all: readonly Series[], x: (v: number) => number, y: (v: number) => number): string[] {
  const out: string[] = [];
  // HarmonyDB last, so it is drawn on top.
  for (const s of [...all].sort((a, b) => a.width - b.width)) {
    const d = s.points.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
    const dash = s.dash === "" ? "" : ` stroke-dasharray='${s.dash}'`;
    out.push(`<path d='${d}' fill='none' stroke='${s.color}' stroke-width='${s.width}'${dash}/>`);
    for (const p of s.points) out.push(`<circle cx='${x(p.x).toFixed(1)}' cy='${y(p.y).toFixed(1)}' r='${s.width + 1}' fill='${s.color}'/>`);
  }
  return out;
}

function legend(all: readonly Series[]): string[] {
  const out: string[] = [];
  const left = PLOT.right + 22;
  all.forEach((s, i) => {
    const yy = PLOT.top + 8 + i * 22;
    const dash = s.dash === "" ? "" : ` stroke-dasharray='${s.dash}'`;
    out.push(`<line x1='${left}' x2='${left + 28}' y1='${yy}' y2='${yy}' stroke='${s.color}' stroke-width='${s.width}'${dash}/>`);
    out.push(`<text x='${left + 36}' y='${yy + 4}'>${esc(s.name)}</text>`);
  });
  return out;
}

/** The SVG for the put workloads in `measures`; `subtitle` says what and when. */
export function putChart(measures: readonly R.Measure[], subtitle: string): string {
  const all = series(measures);
  const levels = [...new Set(all.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const ys = all.flatMap((s) => s.points.map((p) => p.y));
  if (levels.length === 0 || ys.length === 0) throw new Error("no put measures to chart");
  // The levels measured span the x axis, inset so that their points clear the frame.
  const [lo, hi] = levels.length === 1 ? [levels[0]! / 2, levels[0]! * 2] : [levels[0]!, levels.at(-1)!];
  const xAt = (v: number) => PLOT.left + 30 + (Math.log(v / lo) / Math.log(hi / lo)) * (PLOT.right - PLOT.left - 60);
  const yAxis = logAxis(Math.min(...ys), Math.max(...ys), PLOT.bottom, PLOT.top);
  return [
    `<svg xmlns='http://www.w3.org/2000/svg' width='${WIDTH}' height='${HEIGHT}' viewBox='0 0 ${WIDTH} ${HEIGHT}' ${FONT} font-size='12' fill='#222'>`,
    `<rect width='${WIDTH}' height='${HEIGHT}' fill='#ffffff'/>`,
    `<text x='${PLOT.left}' y='26' font-size='16' font-weight='bold'>Durable puts/s against puts in flight</text>`,
    `<text x='${PLOT.left}' y='46' fill='#555'>${esc(subtitle)}</text>`,
    ...axes(levels, yAxis.min, yAxis.max, xAt, yAxis.at),
    ...lines(all, xAt, yAxis.at),
    ...legend(all),
    `</svg>`,
    "",
  ].join("\n");
}
