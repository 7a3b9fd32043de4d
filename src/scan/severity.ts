/** Severity ratings as CVSS v3 names them, plus Unknown for advisories that give none. */
export const SEVERITIES = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'] as const;
export type Severity = (typeof SEVERITIES)[number];

export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** Parses a severity name (any case; Debian's and GitHub's words too); undefined when unknown. */
export function parseSeverity(text: string): Severity | undefined {
  const word = text.trim().toUpperCase();
  if ((SEVERITIES as readonly string[]).includes(word)) return word as Severity;
  if (word === 'MODERATE' || word === 'IMPORTANT') return word === 'MODERATE' ? 'MEDIUM' : 'HIGH';
  if (word === 'NEGLIGIBLE' || word === 'UNIMPORTANT' || word === 'NONE') return 'LOW';
  return undefined;
}

export function ratingOfScore(score: number): Severity {
  if (score >= 9) return 'CRITICAL';
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  if (score > 0) return 'LOW';
  return 'UNKNOWN';
}

const WEIGHTS = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
} as const;

/** CVSS v3.1's Roundup: the smallest one-decimal number not below the input (free of float noise). */
function roundUp(value: number): number {
  const scaled = Math.round(value * 100_000);
  return scaled % 10_000 === 0 ? scaled / 100_000 : (Math.floor(scaled / 10_000) + 1) / 10;
}

/**
 * The base score of a CVSS v3.0/v3.1 vector (`CVSS:3.1/AV:N/AC:L/...`), per the specification's
 * formulas; undefined for a vector that lacks a base metric or is not v3.
 */
export function cvss3BaseScore(vector: string): number | undefined {
  if (!/^CVSS:3\.[01]\//.test(vector)) return undefined;
  const metrics = new Map(vector.split('/').slice(1).map((part) => part.split(':') as [string, string]));
  const get = <T extends Record<string, number>>(name: string, table: T): number | undefined => table[metrics.get(name) as keyof T];
  const scope = metrics.get('S');
  const av = get('AV', WEIGHTS.AV);
  const ac = get('AC', WEIGHTS.AC);
  const ui = get('UI', WEIGHTS.UI);
  const c = get('C', WEIGHTS.CIA);
  const i = get('I', WEIGHTS.CIA);
  const a = get('A', WEIGHTS.CIA);
  const privileges = metrics.get('PR');
  if (av === undefined || ac === undefined || ui === undefined || c === undefined || i === undefined || a === undefined || (scope !== 'U' && scope !== 'C')) return undefined;
  const changed = scope === 'C';
  const pr = privileges === 'N' ? 0.85 : privileges === 'L' ? (changed ? 0.68 : 0.62) : privileges === 'H' ? (changed ? 0.5 : 0.27) : undefined;
  if (pr === undefined) return undefined;
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0) return 0;
  return changed ? roundUp(Math.min(1.08 * (impact + exploitability), 10)) : roundUp(Math.min(impact + exploitability, 10));
}
