import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Summary {
  median: number;
  samples: number[];
}

interface Report {
  machine: { cores: number; memoryBytes: number; versions: Record<string, string> };
  limits: Array<{ label: string; summary: Summary }>;
  figures: Array<{ id: string; wharf?: Summary; distribution?: Summary; ratio?: number }>;
  soak: Array<{ server: string; requests: number; processes: Array<{ role: string; rssEndMiB: number; cpuShare: number }>; series: unknown[] }>;
  scan: { packages: number; inventoryAndMatchMs: Summary; pushOffSeconds: Summary; pushOnSeconds: Summary; sbomAfterSeconds: Summary };
}

/** Runs the bench at tiny sizes; resolves with its exit code and output. */
function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

test('the bench runs every workload against both servers and writes a results JSON', { timeout: 300_000 }, async () => {
  const resultsDir = mkdtempSync(join(tmpdir(), 'bench-test-'));
  try {
    const { code, output } = await runBench([
      '--quick',
      '--repetitions', '1',
      '--blob-mib', '2',
      '--chunk-mib', '1',
      '--load-seconds', '1',
      '--connections', '4',
      '--tag-batch', '20',
      '--tag-list', '40',
      '--tag-list-large', '60',
      '--repo-batch', '20',
      '--catalog-small', '20',
      '--catalog-large', '40',
      '--catalog-huge', '60',
      '--push-clients', '3',
      '--push-client-mib', '1',
      '--soak-seconds', '2',
      '--soak-warmup-seconds', '1',
      '--soak-idle-seconds', '1',
      '--gc-repos', '30',
      '--gc-blobs-per-repo', '4',
      '--results-dir', resultsDir,
    ]);
    assert.equal(code, 0, output);
    const files = readdirSync(resultsDir).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1, output);
    const report = JSON.parse(readFileSync(join(resultsDir, files[0]!), 'utf8')) as Report;

    assert.ok(report.machine.cores >= 1);
    assert.ok(report.machine.memoryBytes > 0);
    assert.match(report.machine.versions.distribution ?? '', /2\.\d+\.\d+/);

    const byId = new Map(report.figures.map((f) => [f.id, f]));
    const both = [
      'push.monolithic', 'push.chunked', 'pull.full', 'pull.range', 'rss.push.max',
      'load.manifest.rps', 'load.manifest.p99', 'load.head.rps', 'load.head.p99',
      'tags.push', 'tags.list.full', 'tags.list.pages', 'repos.create',
      'catalog.small.first', 'catalog.small.pages', 'catalog.large.pages', 'parallel.push', 'rss.peak',
      'soak.rate', 'soak.rss.warm', 'soak.rss.end', 'soak.rss.idle', 'soak.pss.end', 'soak.cpu.busiest',
      'gc.time', 'gc.rate', 'gc.deleted',
      'proxy.upstream.direct', 'proxy.cold', 'proxy.cold.ttfb', 'proxy.warm', 'proxy.fanout.upstream', 'proxy.fanout.time',
    ];
    for (const id of both) {
      const figure = byId.get(id);
      assert.ok(figure, `figure ${id} is missing`);
      assert.ok(figure.wharf && figure.wharf.median > 0, `${id}: no Wharf figure`);
      assert.ok(figure.distribution && figure.distribution.median > 0, `${id}: no Distribution figure`);
      assert.equal(figure.ratio, figure.wharf.median / figure.distribution.median);
    }
    for (const id of ['soak.rss.drift', 'soak.rss.slope']) assert.ok(byId.get(id)?.wharf, `${id}: no Wharf figure`);
    // The soak reports every Wharf process apart. By default one worker serves per core, up to two;
    // with two, the parent only hands out connections and is reported beside them.
    const soak = new Map(report.soak.map((s) => [s.server, s]));
    const workers = Math.min(2, availableParallelism());
    const roles = workers === 1 ? ['main'] : ['parent', ...Array.from({ length: workers }, (_, i) => `worker ${i + 1}`)];
    assert.deepEqual(soak.get('wharf')?.processes.map((p) => p.role), roles);
    assert.deepEqual(soak.get('distribution')?.processes.map((p) => p.role), ['main']);
    for (const s of report.soak) {
      assert.ok(s.requests > 0 && s.series.length > 0, `${s.server}: an empty soak`);
      for (const p of s.processes) assert.ok(p.rssEndMiB > 0, `${s.server} ${p.role}: no RSS`);
    }
    // Garbage collection: both deleted the same garbage (half of 30 × 4 blobs); Wharf served throughout.
    assert.equal(byId.get('gc.deleted')?.wharf?.median, 60);
    assert.equal(byId.get('gc.deleted')?.distribution?.median, 60);
    for (const id of ['gc.get.p50', 'gc.get.p99', 'gc.time.own']) {
      const figure = byId.get(id);
      assert.ok(figure?.wharf && figure.wharf.median > 0, `${id}: no Wharf figure`);
      assert.equal(figure.distribution, undefined, `${id} is measured on Wharf only`);
    }
    assert.equal(byId.get('gc.failures')?.wharf?.median, 0, 'requests failed during the collection');
    for (const id of ['load.manifest.cpu', 'load.manifest.conns', 'load.head.cpu', 'load.head.conns']) {
      const figure = byId.get(id);
      assert.ok(figure?.wharf && figure.wharf.median > 0 && figure.wharf.median <= 100, `${id}: no Wharf share`);
    }
    // The metrics' cost from a profiled server: a share of its busy time, above zero (the observer
    // runs on every request) and far below the whole.
    for (const id of ['operations.metrics.cpu.manifest', 'operations.metrics.cpu.head']) {
      const figure = byId.get(id);
      assert.ok(figure?.wharf && figure.wharf.median > 0 && figure.wharf.median < 50, `${id}: no plausible share`);
      assert.equal(figure.distribution, undefined, `${id} is measured on Wharf only`);
    }
    for (const id of ['tags.large.first', 'catalog.huge.first']) {
      const figure = byId.get(id);
      assert.ok(figure?.wharf && figure.wharf.median > 0, `${id}: no Wharf figure`);
      assert.equal(figure.distribution, undefined, `${id} is measured on Wharf only`);
    }
    // Scanning: the 500-package image was inventoried and matched; the push was timed both ways.
    assert.equal(report.scan.packages, 500);
    for (const key of ['inventoryAndMatchMs', 'pushOffSeconds', 'pushOnSeconds', 'sbomAfterSeconds'] as const) assert.ok(report.scan[key].median > 0, `scan.${key}`);
    // Signing: local cost and the enforced pull's overhead, on Wharf only.
    for (const id of ['signing.local', 'signing.client', 'signing.enforced.p50', 'signing.plain.p50']) {
      const figure = byId.get(id);
      assert.ok(figure?.wharf && figure.wharf.median > 0, `${id}: no Wharf figure`);
    }
    assert.ok(byId.get('signing.enforced.overhead')?.wharf, 'no enforced pull overhead figure');
    // The machine's own limits come from the same run.
    assert.ok(report.limits.some((l) => /openssl/.test(l.label) && l.summary.median > 0));
    assert.ok(report.limits.some((l) => /nginx, same-size file/.test(l.label) && l.summary.median > 0));
    // The ceiling of any Node.js server: bare node:http, one process and two like Wharf's workers.
    for (const processes of ['1 process', '2 processes']) {
      assert.ok(report.limits.some((l) => l.label.startsWith('bare node:http, manifest bytes,') && l.label.endsWith(processes) && l.summary.median > 0), `no bare node:http GET figure (${processes})`);
    }
    assert.match(output, /\| figure \| unit \| Wharf \| Distribution \| Wharf\/Dist \|/);
  } finally {
    rmSync(resultsDir, { recursive: true, force: true });
  }
});
