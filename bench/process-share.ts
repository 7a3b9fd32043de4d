import { connectionsPerProcess } from './connections.js';
import { processCpuSeconds, processTree, type ServerProcess } from './servers.js';

/** How a load spread over a server's processes: CPU seconds and connections held, per pid. */
export interface ProcessShare {
  /** pid → CPU seconds used during the work (user + system, every thread). */
  cpuSeconds: Map<number, number>;
  /** pid → connections to the server's port it held midway through the work. */
  connections: Map<number, number>;
}

/**
 * Runs `work` while watching the server's processes: CPU seconds before and after, and which
 * process holds each connection once, `midwayMs` in (when a keep-alive load has all its
 * connections open).
 */
export async function measureShare<T>(server: ServerProcess, midwayMs: number, work: () => Promise<T>): Promise<{ result: T; share: ProcessShare }> {
  const pids = processTree(server.pid);
  const before = new Map(pids.map((pid) => [pid, processCpuSeconds(pid) ?? 0]));
  let connections = new Map<number, number>();
  const probe = setTimeout(() => {
    connections = connectionsPerProcess(processTree(server.pid), server.target.port);
  }, midwayMs);
  try {
    const result = await work();
    const cpuSeconds = new Map<number, number>();
    for (const pid of processTree(server.pid)) cpuSeconds.set(pid, Math.max(0, (processCpuSeconds(pid) ?? 0) - (before.get(pid) ?? 0)));
    return { result, share: { cpuSeconds, connections } };
  } finally {
    clearTimeout(probe);
  }
}

/** The largest share of one process, in percent (100 for a single process). */
export function busiestShare(values: Map<number, number>): number {
  const total = [...values.values()].reduce((a, b) => a + b, 0);
  return total > 0 ? (Math.max(...values.values()) / total) * 100 : 0;
}
