import cliProgress from 'cli-progress';
import type { CopyEvent } from '../client/index.js';
import { formatSize } from './output.js';

export type ProgressMode = 'tty' | 'plain' | 'quiet' | 'json';
export type TransferVerb = 'pull' | 'push' | 'copy';

/** Picks how to show progress: bars on a terminal, lines when piped, nothing with --quiet, events with --json. */
export function progressMode(options: { quiet?: boolean; json?: boolean }, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  if (options.json) return 'json';
  if (options.quiet) return 'quiet';
  return stream.isTTY ? 'tty' : 'plain';
}

export function shortDigest(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

/** The words docker prints when a layer is finished. */
function doneStatus(verb: TransferVerb, event: Extract<CopyEvent, { type: 'blob-done' }>): string {
  const outcome = event.outcome;
  if (outcome.status === 'mounted') return `Mounted from ${outcome.from}`;
  if (outcome.status === 'exists') return verb === 'pull' ? 'Already exists' : 'Layer already exists';
  return verb === 'pull' ? 'Pull complete' : verb === 'push' ? 'Pushed' : 'Copied';
}

/**
 * Renders copy events per layer: a cli-progress bar for each on a terminal, one line per finished
 * layer when piped (so logs stay readable), JSON lines for scripts, or nothing.
 */
export class TransferProgress {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private multibar: cliProgress.MultiBar | undefined;
  private readonly configs = new Set<string>();

  constructor(
    private readonly mode: ProgressMode,
    private readonly verb: TransferVerb,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    if (mode === 'tty') {
      this.multibar = new cliProgress.MultiBar(
        {
          format: '{id}: {status} [{bar}] {done}/{size}',
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          stream: out,
          forceRedraw: true,
        },
        cliProgress.Presets.legacy,
      );
    }
  }

  handle = (event: CopyEvent): void => {
    if (this.mode === 'quiet') return;
    if (this.mode === 'json') {
      if (event.type !== 'blob-progress') this.out.write(JSON.stringify({ ...event, action: this.verb }) + '\n');
      return;
    }
    if (event.type === 'manifest') return;
    // The config is no layer (docker shows none for it), whatever its media type says.
    if (event.type === 'blob-start' && event.config) this.configs.add(event.digest);
    if (this.configs.has(event.digest)) return;
    const id = shortDigest(event.digest);
    if (this.mode === 'plain') {
      if (event.type === 'blob-done') this.out.write(`${id}: ${doneStatus(this.verb, event)}\n`);
      return;
    }
    if (!this.multibar) return;
    const bar = this.bars.get(event.digest);
    if (event.type === 'blob-start') {
      const verbing = this.verb === 'pull' ? 'Downloading' : this.verb === 'push' ? 'Pushing' : 'Copying';
      this.bars.set(event.digest, this.multibar.create(Math.max(event.size, 1), 0, { id, status: verbing, done: formatSize(0), size: formatSize(event.size) }));
    } else if (event.type === 'blob-progress' && bar) {
      bar.update(event.bytes, { done: formatSize(event.bytes) });
    } else if (event.type === 'blob-done' && bar) {
      bar.update(Math.max(event.size, 1), { status: doneStatus(this.verb, event), done: formatSize(event.size) });
    }
  };

  /**
   * Draws the bars a last time and leaves them. Safe to call again: a second stop() would move
   * the cursor back up and redraw the bars over whatever was printed after them.
   */
  finish(): void {
    this.multibar?.stop();
    this.multibar = undefined;
  }
}
