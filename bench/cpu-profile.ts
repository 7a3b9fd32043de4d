/**
 * Reads a V8 CPU profile (`node --cpu-prof`) and tells what share of the process's busy time was
 * spent inside one module: every sample whose stack holds a frame of that module counts, with
 * whatever it called. Samples are taken on the process's own clock, so the share does not move
 * with what else the machine is doing, where rates and CPU seconds do.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Waiting for events is not work; native code outside JavaScript ('(program)') and GC are. */
const IDLE = '(idle)';

export interface ModuleShare {
  /** Milliseconds the process was busy (every sample but idle). */
  busyMs: number;
  /** Milliseconds with a frame of the module on the stack. */
  moduleMs: number;
  /** moduleMs over busyMs, in percent. */
  percent: number;
}

/** The share of busy time in modules whose URL ends with `urlSuffix`, over every profile in `dir`. */
export function moduleShare(dir: string, urlSuffix: string): ModuleShare {
  let busy = 0;
  let inModule = 0;
  const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no CPU profile was written in ${dir}`);
  for (const name of files) {
    const profile = JSON.parse(readFileSync(join(dir, name), 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    // Whether a node's stack (itself and its callers) holds a frame of the module, memoised.
    const holds = new Map<number, boolean>();
    const stackHolds = (id: number): boolean => {
      const known = holds.get(id);
      if (known !== undefined) return known;
      const node = byId.get(id)!;
      const up = parent.get(id);
      const answer = node.callFrame.url.endsWith(urlSuffix) || (up !== undefined && stackHolds(up));
      holds.set(id, answer);
      return answer;
    };
    profile.samples.forEach((id, i) => {
      const delta = profile.timeDeltas[i] ?? 0;
      if (byId.get(id)!.callFrame.functionName === IDLE) return;
      busy += delta;
      if (stackHolds(id)) inModule += delta;
    });
  }
  return { busyMs: busy / 1000, moduleMs: inModule / 1000, percent: busy > 0 ? (100 * inModule) / busy : 0 };
}
