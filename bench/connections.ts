import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Socket inodes of the open file descriptors of `pid` (empty when it is gone). */
function socketInodes(pid: number): number[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(Number(m[1]));
    } catch {
      // closed while we looked
    }
  }
  return out;
}

/**
 * Which of `pids` holds each accepted TCP connection to `serverPort`, keyed by the client's port:
 * the kernel's connection table (/proc/net/tcp, tcp6) gives each connection's socket inode, and
 * each process's descriptors say which inodes it has. A connection still waiting in the accept
 * queue, or already closed, is in no process's table and so missing from the map.
 */
export function connectionOwners(pids: readonly number[], serverPort: number): Map<number, number> {
  const owner = new Map<number, number>();
  for (const pid of pids) for (const inode of socketInodes(pid)) owner.set(inode, pid);
  const byClientPort = new Map<number, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const localPort = parseInt(fields[1]!.split(':')[1]!, 16);
      if (localPort !== serverPort) continue;
      const clientPort = parseInt(fields[2]!.split(':')[1]!, 16);
      const pid = owner.get(Number(fields[9]));
      if (pid !== undefined && clientPort !== 0) byClientPort.set(clientPort, pid);
    }
  }
  return byClientPort;
}

/** How many of the connections to `serverPort` each process holds right now (a listening socket is not counted). */
export function connectionsPerProcess(pids: readonly number[], serverPort: number): Map<number, number> {
  const counts = new Map<number, number>(pids.map((pid) => [pid, 0]));
  for (const pid of connectionOwners(pids, serverPort).values()) counts.set(pid, (counts.get(pid) ?? 0) + 1);
  return counts;
}
