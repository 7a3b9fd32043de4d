import type { ServerName } from './servers.js';

/** What a target compares: Wharf's median against Distribution's, nginx's, the disk's, or a bound. */
export type Target =
  | { kind: 'ratio-at-least'; value: number }
  | { kind: 'ratio-at-most'; value: number }
  | { kind: 'at-most'; value: number }
  /** For times: Wharf takes at most 1/value of Distribution's time. */
  | { kind: 'faster-at-least'; value: number }
  | { kind: 'nginx-ratio-at-least'; value: number; nginx: string }
  /** Against the disk's durable write rate measured in the same run (the samples of figure `disk`). */
  | { kind: 'disk-ratio-at-least'; value: number; disk: string };

/** Where a figure's samples come from: a registry, or a machine limit measured beside it. */
export type Source = ServerName | 'nginx' | 'disk';

export interface FigureSpec {
  id: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  targets?: Target[];
}

export interface Summary {
  samples: number[];
  median: number;
  min: number;
  max: number;
}

export interface FigureResult extends FigureSpec {
  wharf?: Summary;
  distribution?: Summary;
  /** Wharf's median over Distribution's. */
  ratio?: number;
  /** One verdict per target, in order. */
  verdicts?: Array<{ target: string; met: boolean }>;
}

export function summarize(samples: number[]): Summary | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { samples, median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** Collects samples per figure and server as the workloads run; figures print in the order first seen. */
export class Figures {
  private readonly specs = new Map<string, FigureSpec>();
  private readonly samples = new Map<string, Record<string, number[]>>();

  add(spec: FigureSpec, server: Source, value: number): void {
    if (!Number.isFinite(value)) throw new Error(`${spec.id}: ${server} measured ${value}`);
    if (!this.specs.has(spec.id)) this.specs.set(spec.id, spec);
    const bySource = this.samples.get(spec.id) ?? {};
    (bySource[server] ??= []).push(value);
    this.samples.set(spec.id, bySource);
  }

  median(id: string, source: Source): number | undefined {
    return summarize(this.samples.get(id)?.[source] ?? [])?.median;
  }

  /** Every figure of Wharf and Distribution, with the ratio and target verdicts. */
  results(): FigureResult[] {
    const out: FigureResult[] = [];
    for (const spec of this.specs.values()) {
      const bySource = this.samples.get(spec.id) ?? {};
      const result: FigureResult = { ...spec };
      const wharf = summarize(bySource.wharf ?? []);
      const distribution = summarize(bySource.distribution ?? []);
      if (wharf) result.wharf = wharf;
      if (distribution) result.distribution = distribution;
      if (wharf && distribution && distribution.median > 0) result.ratio = wharf.median / distribution.median;
      if (spec.targets && wharf) {
        result.verdicts = spec.targets.map((target) => this.verdict(target, wharf.median, result.ratio));
      }
      out.push(result);
    }
    return out;
  }

  /** nginx's figures (machine limits), by id. */
  nginx(): Record<string, Summary> {
    const out: Record<string, Summary> = {};
    for (const [id, bySource] of this.samples) {
      const summary = summarize(bySource.nginx ?? []);
      if (summary) out[id] = summary;
    }
    return out;
  }

  private verdict(target: Target, wharf: number, ratio: number | undefined): { target: string; met: boolean } {
    switch (target.kind) {
      case 'ratio-at-least':
        return { target: `≥ ${target.value}× Distribution`, met: ratio !== undefined && ratio >= target.value };
      case 'ratio-at-most':
        return { target: `≤ ${target.value}× Distribution`, met: ratio !== undefined && ratio <= target.value };
      case 'faster-at-least':
        return { target: `≥ ${target.value}× faster than Distribution`, met: ratio !== undefined && ratio <= 1 / target.value };
      case 'at-most':
        return { target: `≤ ${target.value}`, met: wharf <= target.value };
      case 'nginx-ratio-at-least': {
        const nginx = this.median(target.nginx, 'nginx');
        return { target: `≥ ${target.value}× nginx`, met: nginx !== undefined && wharf / nginx >= target.value };
      }
      case 'disk-ratio-at-least': {
        const disk = this.median(target.disk, 'disk');
        return { target: `≥ ${target.value}× the durable disk rate`, met: disk !== undefined && wharf / disk >= target.value };
      }
    }
  }
}

/** A number with about three significant digits, no exponent. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value).toString();
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs >= 0.01) return value.toFixed(3);
  return value.toPrecision(2);
}

function cell(summary: Summary | undefined): string {
  if (!summary) return '—';
  if (summary.samples.length === 1) return formatNumber(summary.median);
  return `${formatNumber(summary.median)} (${formatNumber(summary.min)}–${formatNumber(summary.max)})`;
}

/** The results as a Markdown table: medians with (min–max), the ratio, and each target's verdict. */
export function renderTable(results: FigureResult[]): string {
  const lines = [
    '| figure | unit | Wharf | Distribution | Wharf/Dist | target | met |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const result of results) {
    const ratio = result.ratio === undefined ? '—' : `${formatNumber(result.ratio)}×`;
    const targets = result.verdicts?.map((v) => v.target).join('; ') ?? '';
    const met = result.verdicts?.map((v) => (v.met ? 'yes' : 'NO')).join('; ') ?? '';
    lines.push(`| ${result.label} | ${result.unit} | ${cell(result.wharf)} | ${cell(result.distribution)} | ${ratio} | ${targets} | ${met} |`);
  }
  return lines.join('\n');
}

/** Machine limits (nginx, hashing) as a small Markdown table. */
export function renderLimits(limits: Array<{ label: string; unit: string; summary: Summary }>): string {
  const lines = ['| machine limit | unit | value |', '|---|---|---|'];
  for (const limit of limits) lines.push(`| ${limit.label} | ${limit.unit} | ${cell(limit.summary)} |`);
  return lines.join('\n');
}
