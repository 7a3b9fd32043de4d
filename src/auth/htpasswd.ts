import { readFileSync, statSync } from 'node:fs';
import { bcryptCost, isBcryptHash } from './passwords.js';

/** Checked at most this often for changes, so a busy registry does not stat on every request. */
const RECHECK_MS = 1000;

/**
 * An Apache htpasswd file of bcrypt entries (`htpasswd -B`), as registry:2 reads it. Other hash
 * schemes (MD5, SHA1, crypt, plain) are ignored, as registry:2 ignores them. The file is re-read
 * when its size or modification time changes; a missing file means no users, not a crash.
 */
export class HtpasswdFile {
  private users = new Map<string, string>();
  private costliest = 0;
  private signature = '';
  private checkedAt = 0;
  private readonly skipped: string[] = [];

  constructor(
    readonly path: string,
    private readonly onReload?: (info: { users: number; ignored: string[]; maxCost: number; error?: string }) => void,
  ) {
    this.refresh(true);
  }

  /** The bcrypt hash for a user, or undefined when the file has no usable entry. */
  hashFor(user: string): string | undefined {
    this.refresh(false);
    return this.users.get(user);
  }

  has(user: string): boolean {
    return this.hashFor(user) !== undefined;
  }

  /** The highest bcrypt cost in the file (0 when it has no users). */
  maxCost(): number {
    this.refresh(false);
    return this.costliest;
  }

  names(): string[] {
    this.refresh(false);
    return [...this.users.keys()].sort();
  }

  /** Re-reads now if the file changed (or always, with `force`). */
  refresh(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    let signature: string;
    try {
      const stat = statSync(this.path);
      signature = `${stat.size}:${stat.mtimeMs}:${stat.ino}`;
    } catch (error) {
      if (this.signature !== 'missing') {
        this.signature = 'missing';
        this.users = new Map();
        this.costliest = 0;
        this.onReload?.({ users: 0, ignored: [], maxCost: 0, error: (error as NodeJS.ErrnoException).code ?? 'unreadable' });
      }
      return;
    }
    if (!force && signature === this.signature) return;
    this.signature = signature;
    const users = new Map<string, string>();
    let costliest = 0;
    this.skipped.length = 0;
    for (const rawLine of readFileSync(this.path, 'utf8').split('\n')) {
      const line = rawLine.trim();
      if (line === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const user = line.slice(0, colon);
      const hash = line.slice(colon + 1);
      if (/^\$2[abxy]\$/.test(hash)) users.set(user, hash);
      else this.skipped.push(user);
      if (isBcryptHash(hash)) costliest = Math.max(costliest, bcryptCost(hash));
    }
    this.users = users;
    this.costliest = costliest;
    this.onReload?.({ users: users.size, ignored: [...this.skipped], maxCost: costliest });
  }
}
