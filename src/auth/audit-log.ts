import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

/**
 * One line of the audit trail. Never holds a secret: names, repositories, digests, outcomes.
 * `actor` is the user or robot (absent for anonymous); `remote` the client address.
 */
export interface AuditEntry {
  event: string;
  actor?: string;
  remote?: string;
  outcome?: 'success' | 'failure' | 'allow' | 'deny';
  [field: string]: unknown;
}

export interface AuditSink {
  record(entry: AuditEntry): void;
  close(): Promise<void>;
}

/** Appends JSON lines to a file (mode 0600), one per decision or change, with a timestamp. */
export class AuditLog implements AuditSink {
  private readonly stream: WriteStream;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
    this.stream.on('error', () => {
      // A full disk must not take the registry down; the error surfaces in close().
    });
  }

  record(entry: AuditEntry): void {
    this.stream.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

/** Where audit entries go when auditing is off. */
export const NO_AUDIT: AuditSink = { record() {}, close: async () => {} };
