import { spawn } from 'node:child_process';
import { WHARF_BIN } from './wharf-process.js';
import { requireTool } from './tools.js';

/** A `wharf` process on a pseudo-terminal that a test types into, as a person would. */
export interface TerminalSession {
  /** Everything the terminal received so far. */
  raw(): string;
  /** Resolves once the terminal has received `text` (after `from`, a length of raw() already seen). */
  waitFor(text: string | RegExp, from?: number): Promise<void>;
  /** Types `text` (a newline is Enter). */
  type(text: string): void;
  result: Promise<{ code: number | null; raw: string }>;
}

/**
 * Starts `wharf ARGS…` on a pseudo-terminal (util-linux `script`), 200 columns wide, stdout and
 * stderr both on the terminal as a user sees them.
 */
export function startOnTerminal(args: string[], env: Record<string, string>): TerminalSession {
  requireTool('script');
  const quoted = [process.execPath, WHARF_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qefc', `stty cols 200 rows 50; exec ${quoted}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let raw = '';
  const waiters: Array<() => void> = [];
  const received = (d: Buffer) => {
    raw += d.toString();
    for (const wake of waiters.splice(0)) wake();
  };
  child.stdout.on('data', received);
  child.stderr.on('data', received);
  child.stdin.on('error', () => {});
  const result = new Promise<{ code: number | null; raw: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      for (const wake of waiters.splice(0)) wake();
      resolve({ code, raw });
    });
  });
  let closed = false;
  void result.then(() => (closed = true));
  return {
    raw: () => raw,
    async waitFor(text, from = 0) {
      const seen = () => (typeof text === 'string' ? raw.indexOf(text, from) >= 0 : text.test(raw.slice(from)));
      while (!seen()) {
        if (closed) throw new Error(`the program ended before printing ${String(text)}:\n${raw}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    type(text) {
      child.stdin.write(text);
    },
    result,
  };
}

/** Runs `wharf ARGS…` on a pseudo-terminal to the end; returns the raw bytes the terminal received. */
export function runOnTerminal(args: string[], env: Record<string, string>): Promise<{ code: number | null; raw: string }> {
  return startOnTerminal(args, env).result;
}

/**
 * What a terminal shows after receiving `raw`: a small screen model that follows the cursor
 * movements progress bars use (CR, LF, CSI n A/B/C/D/G, K, J), so a test can tell what stayed
 * on screen from what was drawn over.
 */
export function screenOf(raw: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  const line = () => (lines[row] ??= []);
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\x1b' && raw[i + 1] === '[') {
      const m = /^\x1b\[([?0-9;]*)([A-Za-z])/.exec(raw.slice(i))!;
      i += m[0].length - 1;
      const n = Number(m[1] || '1');
      switch (m[2]) {
        case 'A': row = Math.max(0, row - n); break;
        case 'B': row += n; break;
        case 'C': col += n; break;
        case 'D': col = Math.max(0, col - n); break;
        case 'G': col = n - 1; break;
        case 'K': {
          const mode = Number(m[1] || '0');
          if (mode === 2) lines[row] = [];
          else if (mode === 0) line().length = Math.min(line().length, col);
          break;
        }
        case 'J':
          line().length = Math.min(line().length, col);
          lines.length = row + 1;
          break;
      }
      continue;
    }
    if (c === '\r') col = 0;
    else if (c === '\n') {
      row++;
      line();
    } else if (c >= ' ' || c === '\t') {
      const l = line();
      while (l.length < col) l.push(' ');
      l[col++] = c;
    }
  }
  return lines.map((l) => l.join('').trimEnd()).filter((l, i, all) => l !== '' || i < all.length - 1);
}
