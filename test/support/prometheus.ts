import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

/** One sample as the parser gives it: a value, or a histogram's buckets, count and sum. */
export interface Sample {
  labels?: Record<string, string>;
  value?: string;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

/**
 * Fetches a Prometheus text page and parses it with a real parser; asserts a 200 with the text
 * format's content type. The parser keeps a histogram's `le` label only, merging series that
 * differ by others; `text` is the page as served, to read such a series' own lines.
 */
export async function scrape(url: string): Promise<Map<string, Family> & { text: string }> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `scrape of ${url}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const families = parsePrometheusTextFormat(text) as Family[];
  return Object.assign(new Map(families.map((family) => [family.name, family])), { text });
}

/** The value of the one line `name{labels}` on a page (labels in the order served), or undefined. */
export function line(text: string, name: string, labels: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return found === undefined ? undefined : Number(found.slice(found.lastIndexOf(' ') + 1));
}

/** The samples of `name` whose labels include `labels`. */
export function samples(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample[] {
  const family = families.get(name);
  assert.ok(family, `metric ${name} is missing`);
  return family.metrics.filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value));
}

/** The sum of the values (or histogram counts) of `name` whose labels include `labels`. */
export function total(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  return samples(families, name, labels).reduce((sum, sample) => sum + Number(sample.value ?? sample.count ?? 0), 0);
}
