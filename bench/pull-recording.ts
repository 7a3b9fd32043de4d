/**
 * The `pulls` workload group: what recording manifests' last-pull times (for retention) costs a
 * manifest GET. Two Wharf servers with the same settings and content, one with
 * `retention.recordpulls` off, take the same wrk load in alternating order; the cost is the
 * drop in requests per second with recording on.
 */
import type { FigureSpec } from './figures.js';
import type { BenchOptions } from './options.js';
import { pushSmallImage } from './registry-ops.js';
import { startWharf, type ServerProcess } from './servers.js';
import type { BenchContext } from './workloads.js';
import { runWrk } from './wrk.js';

export function pullRecordingFigureSpecs(o: BenchOptions) {
  const spec = (id: string, label: string, unit: string, better: 'higher' | 'lower', targets?: FigureSpec['targets']): FigureSpec =>
    targets ? { id, label, unit, better, targets } : { id, label, unit, better };
  return {
    on: spec('pulls.recorded.rps', `manifest GET by tag, ${o.connections} conns, last-pull recording on (the default)`, 'req/s', 'higher'),
    off: spec('pulls.unrecorded.rps', `manifest GET by tag, ${o.connections} conns, retention.recordpulls: false`, 'req/s', 'higher'),
    cost: spec('pulls.cost', 'cost of last-pull recording on manifest GET (drop in req/s, median of paired runs)', '%', 'lower', [{ kind: 'at-most', value: 5 }]),
  };
}

export async function pullRecordingWorkloads(ctx: BenchContext, root: string): Promise<void> {
  const { options: o, figures } = ctx;
  const f = pullRecordingFigureSpecs(o);
  const recorded = ctx.servers.wharf;
  const unrecorded: ServerProcess = await startWharf(root, {
    workers: o.wharfWorkers,
    nodeArgs: o.wharfNodeArgs,
    env: { REGISTRY_RETENTION_RECORDPULLS: 'false' },
  });
  try {
    await pushSmallImage(unrecorded.target, 'bench/small', ctx.image, 'latest');
    const load = (server: ServerProcess) =>
      runWrk(ctx.wrk, {
        url: `http://${server.target.hostPort}/v2/bench/small/manifests/latest`,
        method: 'GET',
        connections: o.connections,
        seconds: o.loadSeconds,
        scratch: ctx.scratch,
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
    // One more pair than the other groups' repetitions: the difference sought is small.
    for (let rep = 0; rep < o.repetitions + 1; rep += 1) {
      ctx.log(`pulls: repetition ${rep + 1}/${o.repetitions + 1}`);
      const pair: Record<'on' | 'off', number> = { on: 0, off: 0 };
      for (const which of rep % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const result = await load(which === 'on' ? recorded : unrecorded);
        pair[which] = result.requestsPerSecond;
        figures.add(which === 'on' ? f.on : f.off, 'wharf', result.requestsPerSecond);
      }
      figures.add(f.cost, 'wharf', ((pair.off - pair.on) / pair.off) * 100);
    }
  } finally {
    await unrecorded.stop();
  }
}
