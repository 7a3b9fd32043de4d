import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';

const MiB = 1024 * 1024;

/** Writes zeros into `path` until `free` bytes are left on its file system (or none at all). */
export function fill(path: string, mountPoint: string, free: number): void {
  const fd = openSync(path, 'a');
  const block = Buffer.alloc(MiB);
  try {
    for (;;) {
      const available = Number(execFileSync('df', ['--output=avail', '-B1', mountPoint]).toString().trim().split('\n')[1]);
      if (available <= free) return;
      try {
        writeSync(fd, block, 0, Math.min(block.length, available - free));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
}
