/**
 * `npm run bench`: Wharf and CNCF Distribution side by side on this machine, with the machine's
 * own limits (sha256, nginx) measured in the same run. Prints a Markdown table of medians and
 * writes everything as JSON into bench/results/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Figures, renderLimits, renderTable, summarize, type Summary } from './figures.js';
import { ensureTools, machineInfo, nodeSha256, opensslSha256 } from './machine.js';
import { OPT_IN_GROUPS, parseOptions, type BenchOptions } from './options.js';
import { operationsWorkloads, renderOperations, type OperationsResult } from './operations.js';
import { pushSmallImage, smallImage } from './registry-ops.js';
import { RssSampler, startDistribution, startNginx, startWharf, type ServerName, type ServerProcess } from './servers.js';
import { gcWorkloads, renderGc, type GcResult } from './gc.js';
import { pullRecordingWorkloads } from './pull-recording.js';
import { renderScan, scanWorkloads, type ScanResult } from './scan.js';
import { s3Workloads } from './s3.js';
import { proxyWorkloads } from './proxy.js';
import { scaleWorkloads } from './scale.js';
import { renderSoak, soakWorkloads, type SoakResult } from './soak.js';
import { searchWorkloads } from './search.js';
import { signingWorkloads } from './signing.js';
import {
  blobWorkloads,
  figureSpecs,
  loadWorkloads,
  parallelPushWorkloads,
  repositoryWorkloads,
  tagWorkloads,
  type BenchContext,
} from './workloads.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function wanted(options: BenchOptions, group: string): boolean {
  if (OPT_IN_GROUPS.includes(group)) return options.only.includes(group);
  return options.only.length === 0 || options.only.includes(group);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv, join(ROOT, 'bench/results'));
  const startedAt = new Date();
  const tools = ensureTools(log);
  const wharfVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const machine = machineInfo(tools, wharfVersion);
  log(`${machine.cores} cores, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${machine.versions.distribution}`);

  const limits: Array<{ label: string; unit: string; summary: Summary }> = [];
  if (!options.skipLimits) {
    log('machine limits: sha256');
    limits.push({ label: 'sha256, openssl speed -evp sha256 (16 KiB blocks)', unit: 'MB/s', summary: summarize([opensslSha256(tools.openssl, options.quick ? 1 : 3)])! });
    limits.push({ label: 'sha256, Node.js crypto (1 MiB updates)', unit: 'MB/s', summary: summarize([nodeSha256(options.quick ? 256 * MiB : 1024 * MiB)])! });
  }

  const scratch = mkdtempSync(join(tmpdir(), 'bench-scratch-'));
  const started: ServerProcess[] = [];
  const figures = new Figures();
  const measuredLimits: BenchContext['limits'] = new Map();
  const details: Record<string, unknown> = {};
  let sampler: RssSampler | undefined;
  const launch = (name: ServerName): Promise<ServerProcess> =>
    name === 'wharf'
      ? startWharf(options.wharfRoot ?? ROOT, { workers: options.wharfWorkers, nodeArgs: options.wharfNodeArgs })
      : startDistribution(tools['docker-registry']);
  try {
    const wharf = await launch('wharf');
    started.push(wharf);
    const distribution = await launch('distribution');
    started.push(distribution);
    const image = smallImage();
    let nginx: ServerProcess | undefined;
    if (!options.skipLimits) {
      // The same bytes the registries serve: a blob-sized file and a manifest-sized one.
      nginx = await startNginx(tools.nginx, { blob: Buffer.alloc(options.blobMiB * MiB, 7), small: image.manifest });
      started.push(nginx);
    }
    sampler = new RssSampler([wharf, distribution]);
    for (const server of [wharf, distribution]) await pushSmallImage(server.target, 'bench/small', image, 'latest');
    const ctx: BenchContext = { options, figures, sampler, servers: { wharf, distribution }, nginx, image, limits: measuredLimits, wrk: tools.wrk, curl: tools.curl, registryBinary: tools['docker-registry'], wharfCli: join(options.wharfRoot ?? ROOT, 'dist/cli/main.js'), scratch, log, launch, details };

    if (wanted(options, 'blobs')) await blobWorkloads(ctx);
    if (wanted(options, 'load')) await loadWorkloads(ctx);
    if (wanted(options, 'parallel')) await parallelPushWorkloads(ctx);
    if (wanted(options, 'tags')) await tagWorkloads(ctx);
    if (wanted(options, 'repos')) await repositoryWorkloads(ctx);
    if (wanted(options, 'soak')) await soakWorkloads(ctx);
    if (wanted(options, 'pulls')) await pullRecordingWorkloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 'gc')) await gcWorkloads(ctx);
    if (wanted(options, 'operations')) await operationsWorkloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 'search')) await searchWorkloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 'scan')) await scanWorkloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 's3')) await s3Workloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 'signing')) await signingWorkloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 'proxy')) await proxyWorkloads(ctx, options.wharfRoot ?? ROOT);
    if (wanted(options, 'scale')) await scaleWorkloads(ctx);

    sampler.stop();
    const { rssPeak, pssPeak } = figureSpecs(options);
    for (const name of ['wharf', 'distribution'] as const) {
      figures.add(rssPeak, name, sampler.peak(name).rss / MiB);
      figures.add(pssPeak, name, sampler.peak(name).pss / MiB);
    }
  } catch (error) {
    for (const server of started) log(`${server.name} output (tail):\n${server.output().slice(-2000)}`);
    throw error;
  } finally {
    sampler?.stop();
    for (const server of started.reverse()) await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }

  for (const [label, { unit, samples }] of measuredLimits) limits.push({ label, unit, summary: summarize(samples)! });
  const nginxFigures = figures.nginx();
  const nginxLabels: Record<string, string> = {
    'pull.full': 'nginx, same-size file over loopback (sendfile)',
    'pull.range': 'nginx, same Range',
    'load.manifest.rps': `nginx, manifest-sized file, ${options.connections} conns`,
    'load.manifest.p99': 'nginx, manifest-sized file p99',
    'load.head.rps': `nginx, HEAD of that file, ${options.connections} conns (the bench's HEAD generator)`,
    'load.head.p99': 'nginx, HEAD p99',
  };
  const units: Record<string, string> = {
    'pull.full': 'MB/s',
    'pull.range': 'MB/s',
    'load.manifest.rps': 'req/s',
    'load.manifest.p99': 'ms',
    'load.head.rps': 'req/s',
    'load.head.p99': 'ms',
  };
  for (const [id, summary] of Object.entries(nginxFigures)) limits.push({ label: nginxLabels[id] ?? `nginx ${id}`, unit: units[id] ?? '', summary });

  const results = figures.results();
  const finishedAt = new Date();
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const report = {
    command,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000),
    machine,
    options,
    limits,
    figures: results,
    ...details,
  };
  mkdirSync(options.resultsDir, { recursive: true });
  const file = join(options.resultsDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);

  const out = [
    `Command: \`${command}\` (${report.durationSeconds} s)`,
    `Machine: ${machine.cores} × ${machine.cpuModel}, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${machine.versions.os}, Linux ${machine.kernel}`,
    `Versions: Wharf ${wharfVersion} on Node.js ${machine.versions.node}; ${machine.versions.distribution}; ${machine.versions.nginx}; ${machine.versions.wrk}`,
    `Medians of ${options.repetitions} repetitions (min–max); MB = 10^6 bytes; Wharf/Dist is the ratio of medians.`,
    '',
    renderTable(results),
    '',
    limits.length > 0 ? renderLimits(limits) : '',
    '',
    ...(details.soak ? ['Soak, per process (CPU during the measured part; requests by the process that held their connection):', '', renderSoak(details.soak as SoakResult[]), ''] : []),
    ...(details.gc ? ['Garbage collection (one run per server):', '', renderGc(details.gc as GcResult[]), ''] : []),
    ...(details.operations
      ? ['Cost of metrics and rate limits (three fresh Wharf servers, one setting apart; medians, (min–max), ratio to off):', '', renderOperations(details.operations as OperationsResult[]), '']
      : []),
    ...(details.scan ? ['Scanning (Wharf only; fresh servers with scanning off and on):', '', renderScan(details.scan as ScanResult), ''] : []),
    `Results: ${file}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
