import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WharfProcess } from './wharf-process.js';

/** A bcrypt htpasswd line as `htpasswd -Bbn` writes it (the real tool, as registry:2 users do). */
export function htpasswdLine(user: string, password: string): string {
  return execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }).trim();
}

export function writeHtpasswd(path: string, users: Record<string, string>): void {
  writeFileSync(path, `${Object.entries(users).map(([u, p]) => htpasswdLine(u, p)).join('\n')}\n`);
}

export interface TestCertificates {
  dir: string;
  /** CA certificate that signed the server and client certificates. */
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA, a server certificate for 127.0.0.1/localhost signed by it, and a client certificate, made with openssl. */
export function makeCertificates(dir = mkdtempSync(join(tmpdir(), 'wharf-certs-')), name = 'server'): TestCertificates {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=Wharf Test CA', '-keyout', 'ca.key', '-out', 'ca.crt', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  signed(dir, name, '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  signed(dir, 'client', '/CN=ci-client', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, `${name}.crt`),
    serverKey: join(dir, `${name}.key`),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
}

/** Another server certificate from the same CA (for reload tests). */
export function signed(dir: string, name: string, subject: string, extensions: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * Collects the secrets a test suite uses and the servers it ran, and finds any secret in
 * anything they wrote: stdout/stderr and every file under their data directories that is not
 * a database or blob (audit.log and friends).
 */
export class SecretWatch {
  private readonly secrets = new Set<string>();
  private readonly servers: WharfProcess[] = [];

  secret(value: string): string {
    if (value.length >= 6) this.secrets.add(value);
    return value;
  }

  /** A password, and the Basic header that carries it with its user name. */
  credentials(user: string, password: string): string {
    this.secret(password);
    this.secrets.add(Buffer.from(`${user}:${password}`).toString('base64'));
    return password;
  }

  server(wharf: WharfProcess): WharfProcess {
    this.servers.push(wharf);
    return wharf;
  }

  /** Names of the places where a secret showed up (empty when none did). */
  leaks(): string[] {
    const found: string[] = [];
    const scan = (label: string, text: string) => {
      for (const secret of this.secrets) {
        if (text.includes(secret) || text.includes(Buffer.from(secret).toString('base64'))) found.push(`${label}: ${secret.slice(0, 4)}…`);
      }
    };
    for (const wharf of this.servers) {
      scan(`output of wharf on ${wharf.port}`, wharf.output());
      for (const file of logFiles(wharf.dataDir)) scan(file, readFileSync(file, 'utf8'));
    }
    return found;
  }

  /** Stops every server and removes the data directories they own (after the leak check). */
  async dispose(): Promise<void> {
    for (const wharf of this.servers) await wharf.dispose();
  }

  /** How many log sources were read (so a test can see the check had something to read). */
  sources(): number {
    return this.servers.reduce((n, w) => n + 1 + logFiles(w.dataDir).length, 0);
  }
}

/** Log files a server wrote under a data directory (blobs, uploads and databases left out). */
export function logFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry);
    const stat = statSync(path);
    if (stat.isDirectory()) {
      if (entry !== 'blobs' && entry !== 'uploads' && entry !== 'docker') out.push(...logFiles(path));
    } else if (/\.(log|jsonl|txt)$/.test(entry)) out.push(path);
  }
  return out;
}
