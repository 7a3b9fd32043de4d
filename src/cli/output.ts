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
 * A small subset of Go templates, enough for docker-style `--format`: `{{.Field.Sub}}`,
 * `{{json .X}}`, `{{index .X 0}}`, `{{join .X ","}}`, `{{upper .X}}`, `{{lower .X}}`;
 * `\t` and `\n` in the template are turned into tab and newline.
 */
export function renderTemplate(template: string, data: unknown): string {
  const text = template.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return text.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_match, expression: string) => {
    const value = evaluate(expression.trim(), data);
    if (value === undefined || value === null) return '<no value>';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  });
}

function tokens(expression: string): string[] {
  return expression.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function evaluate(expression: string, data: unknown): unknown {
  const parts = tokens(expression);
  const arg = (token: string | undefined): unknown => {
    if (token === undefined) throw new Error(`template: missing argument in "${expression}"`);
    if (token.startsWith('"')) return JSON.parse(token) as string;
    if (/^-?\d+$/.test(token)) return Number(token);
    if (token === '.') return data;
    if (token.startsWith('.')) return lookup(data, token.slice(1).split('.'));
    throw new Error(`template: cannot evaluate "${token}"`);
  };
  const [head, ...rest] = parts;
  switch (head) {
    case 'json':
      return JSON.stringify(arg(rest[0]));
    case 'index': {
      const target = arg(rest[0]) as Record<string | number, unknown> | undefined;
      return target?.[arg(rest[1]) as string | number];
    }
    case 'join':
      return ((arg(rest[0]) as unknown[] | undefined) ?? []).join(String(arg(rest[1])));
    case 'upper':
      return String(arg(rest[0])).toUpperCase();
    case 'lower':
      return String(arg(rest[0])).toLowerCase();
    default:
      return arg(head);
  }
}

function lookup(data: unknown, path: string[]): unknown {
  let value = data;
  for (const key of path) {
    if (key === '') continue;
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}
