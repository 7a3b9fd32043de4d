import { GoTemplate } from './go-template.js';

/** Prints rows as docker does: columns left-aligned, three spaces apart. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join('')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Cuts a string to `max` characters with an ellipsis, as docker does without --no-trunc. */
export function truncate(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

export function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(3))}${units[unit]}`;
}

/** "2 years ago", as docker's CREATED column reads. */
export function timeAgo(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return 'N/A';
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  const steps: Array<[number, string]> = [
    [60 * 60 * 24 * 365, 'year'],
    [60 * 60 * 24 * 30, 'month'],
    [60 * 60 * 24 * 7, 'week'],
    [60 * 60 * 24, 'day'],
    [60 * 60, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, name] of steps) {
    const count = Math.floor(seconds / size);
    if (count >= 1) return `${count} ${name}${count === 1 ? '' : 's'} ago`;
  }
  return 'Less than a minute ago';
}

/**
 * Renders values with a docker-style `--format`: a Go template run once per value, or with a
 * leading `table`, a header row (each field's header from `headers`, else its name in capitals)
 * and the rows aligned in columns at the template's tabs, as docker's tabwriter does. Literal
 * `\t` and `\n` in the format are a tab and a newline, as docker reads them.
 */
export function renderFormat(format: string, values: unknown[], headers: Record<string, string> = {}): string {
  const text = format.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  if (!text.startsWith('table')) {
    const template = new GoTemplate(text);
    return values.map((v) => `${template.execute(v)}\n`).join('');
  }
  const template = new GoTemplate(text.slice('table'.length).trim());
  const headerRow = new Proxy(headers, {
    get: (target, key) => (typeof key === 'string' ? target[key] ?? key.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase() : undefined),
  });
  const lines = [template.execute(headerRow), ...values.map((v) => template.execute(v))].join('\n').split('\n');
  return alignColumns(lines) + '\n';
}

/**
 * Aligns tab-separated cells as Go's tabwriter does with docker's settings (cells at least 10
 * wide, 3 spaces of padding); the last cell of a line is not padded.
 */
function alignColumns(lines: string[]): string {
  const cells = lines.map((l) => l.split('\t'));
  const widths: number[] = [];
  for (const row of cells) row.slice(0, -1).forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(Math.max(10, widths[i]! + 3)))).join('').trimEnd()).join('\n');
}
