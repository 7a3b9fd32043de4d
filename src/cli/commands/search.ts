import type { Command } from 'commander';
import type { SearchResult } from '../../client/index.js';
import { DOCKER_HUB } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { renderFormat, renderTable, truncate } from '../output.js';

/** `[REGISTRY/]TERM`: a first component with `.` or `:`, or `localhost`, is a registry. */
export function splitSearchTerm(text: string): { registry: string; term: string } {
  const slash = text.indexOf('/');
  if (slash > 0) {
    const first = text.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') return { registry: first, term: text.slice(slash + 1) };
  }
  return { registry: DOCKER_HUB, term: text };
}

interface Filters {
  stars?: number;
  official?: boolean;
  /** `is-signed=true`: Wharf's `/v1/search?signed=true`, answered by the registry. */
  signed?: boolean;
}

function parseFilters(values: string[]): Filters {
  const filters: Filters = {};
  for (const value of values) {
    const [key, raw] = value.split('=', 2);
    if (key === 'stars' && raw !== undefined && /^\d+$/.test(raw)) filters.stars = Number(raw);
    else if (key === 'is-official' && (raw === 'true' || raw === 'false')) filters.official = raw === 'true';
    else if (key === 'is-signed' && raw === 'true') filters.signed = true;
    else throw new Error(`invalid filter "${value}" (expected stars=N, is-official=true|false or is-signed=true)`);
  }
  return filters;
}

export function registerSearch(program: Command): void {
  program
    .command('search')
    .description("search a registry's images (/v1/search, else the names in its catalog)")
    .argument('<term>', '[REGISTRY/]TERM, e.g. localhost:5000/app')
    .option('--limit <n>', 'at most this many results', (v) => Number.parseInt(v, 10), 25)
    .option('-f, --filter <filter>', 'stars=N, is-official=true or is-signed=true (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--no-trunc', "don't truncate descriptions")
    .option('--format <format>', "json, or a Go template as docker's: '{{.Name}}\\t{{.StarCount}}', 'table {{.Name}}\\t{{.IsOfficial}}'")
    .action(async (text: string, options: { limit: number; filter: string[]; trunc: boolean; format?: string }, command: Command) =>
      withContext(command, async (context) => {
        const { registry, term } = splitSearchTerm(text);
        const filters = parseFilters(options.filter);
        // Docker Hub answers /v1/search on its index host, not on the registry API host.
        const client = context.client(registry === DOCKER_HUB ? 'index.docker.io' : registry);
        // Docker Hub would ignore the parameter and list unsigned repositories as if signed.
        if (filters.signed && registry === DOCKER_HUB) throw new Error('the is-signed filter needs a Wharf registry (/v1/search?signed=true); Docker Hub has none');
        let results = await client.search(term, options.limit, filters.signed ? { signed: true } : {});
        let source = 'search';
        if (results === undefined && filters.signed) throw new Error(`${registry} has no search API (/v1/search), so it cannot filter on signed images; list a repository's signed tags instead`);
        if (results === undefined) {
          // No search API (Distribution): filter the catalog's names, as podman does.
          source = 'catalog';
          results = [];
          const needle = term.toLowerCase();
          for await (const name of client.catalog()) {
            if (!name.toLowerCase().includes(needle)) continue;
            results.push({ name: `${registry}/${name}`, description: '', star_count: 0, is_official: false });
            if (results.length >= options.limit) break;
          }
        }
        const shown = results
          .filter((r: SearchResult) => filters.stars === undefined || (r.star_count ?? 0) >= filters.stars)
          .filter((r: SearchResult) => filters.official === undefined || Boolean(r.is_official) === filters.official)
          .slice(0, options.limit);
        const format = options.format ?? (context.options.json ? 'json' : 'table');
        if (format === 'json') {
          process.stdout.write(JSON.stringify(shown.map((r) => ({ ...r, source })), null, 2) + '\n');
          return;
        }
        if (format !== 'table') {
          // docker search's template fields: Name, Description, StarCount, IsOfficial, IsAutomated.
          const values = shown.map((r) => ({
            Name: r.name,
            Description: options.trunc ? truncate((r.description ?? '').replace(/\s+/g, ' '), 45) : (r.description ?? ''),
            StarCount: r.star_count ?? 0,
            IsOfficial: Boolean(r.is_official),
            IsAutomated: Boolean(r.is_automated),
          }));
          process.stdout.write(renderFormat(format, values, { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' }));
          return;
        }
        const rows = shown.map((r) => [
          r.name,
          options.trunc ? truncate((r.description ?? '').replace(/\s+/g, ' '), 45) : r.description ?? '',
          String(r.star_count ?? 0),
          r.is_official ? '[OK]' : '',
        ]);
        process.stdout.write(renderTable(['NAME', 'DESCRIPTION', 'STARS', 'OFFICIAL'], rows));
      }),
    );
}
