/**
 * Before and after: `node --import tsx bench/compare.ts BEFORE.json AFTER.json` prints, for every
 * figure in both runs, Wharf's median and its ratio to Distribution in each, as Markdown.
 */
import { readFileSync } from 'node:fs';
import { formatNumber, type FigureResult } from './figures.js';

interface Report {
  command: string;
  figures: FigureResult[];
}

const [beforeFile, afterFile] = process.argv.slice(2);
if (!beforeFile || !afterFile) {
  process.stderr.write('usage: node --import tsx bench/compare.ts BEFORE.json AFTER.json\n');
  process.exit(2);
}
const load = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Report;
const before = load(beforeFile);
const after = load(afterFile);
const beforeById = new Map(before.figures.map((f) => [f.id, f]));

const cell = (figure: FigureResult | undefined) => {
  if (!figure?.wharf) return '—';
  const ratio = figure.ratio === undefined ? '' : ` (${formatNumber(figure.ratio)}×)`;
  return `${formatNumber(figure.wharf.median)}${ratio}`;
};

const lines = [
  `Before: \`${before.command}\``,
  `After: \`${after.command}\``,
  '',
  '| figure | unit | Wharf before (×Dist) | Wharf after (×Dist) | Distribution after |',
  '|---|---|---|---|---|',
];
for (const figure of after.figures) {
  const distribution = figure.distribution ? formatNumber(figure.distribution.median) : '—';
  lines.push(`| ${figure.label} | ${figure.unit} | ${cell(beforeById.get(figure.id))} | ${cell(figure)} | ${distribution} |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
