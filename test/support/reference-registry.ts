import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The CNCF Distribution registry as Debian ships it (package docker-registry). */
export const DOCKER_REGISTRY_BIN = '/usr/bin/docker-registry';

export type RegistryMode = 'plain' | 'htpasswd' | 'tls' | 'token' | 'tls-htpasswd';

export interface ReferenceRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** The registry process, for tests and the bench that watch its memory. */
  pid: number;
  /** `http://…` or `https://…` */
  url: string;
  dir: string;
  /** The CA that signed the TLS certificate (tls mode). */
  caFile?: string;
  username?: string;
  password?: string;
  output(): string;
  stop(): Promise<void>;
}

export interface ReferenceRegistryOptions {
  mode: RegistryMode;
  /** Token mode: where tokens are issued and the cert bundle that verifies them. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /**
   * Quiet and fast, as the bench runs it: log level warn (its per-request "response completed"
   * lines are an access log in all but name), the access log off, and the in-memory blob
   * descriptor cache of Debian's own config. Tests keep the default: every request logged.
   */
  tuned?: boolean;
  /** Another docker-registry binary (default: Debian's). */
  binary?: string;
  /** More top-level YAML (a `notifications:` section, say), appended to the generated config. */
  extraConfig?: string;
  /** Lines of the `storage:` section's driver in place of the filesystem one (an `  s3:` block, say). */
  storageDriver?: string[];
  /** Environment changes for the registry process (a variable set to undefined is removed). */
  env?: NodeJS.ProcessEnv;
}

/** A free loopback TCP port (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a required tool; a missing tool fails the test with its name (never a skip). */
export function tool(command: string, args: string[], options: { cwd?: string; input?: string } = {}): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...options });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new Error(`required tool "${command}" is not installed`);
    throw new Error(`${command} ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

/** A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with openssl. */
export function makeCertificates(dir: string): { caFile: string; caKey: string; certFile: string; keyFile: string } {
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  tool('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=wharf test CA']);
  tool('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost']);
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  tool('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  return { caFile, caKey, certFile, keyFile };
}

/** A bcrypt htpasswd file with one user, made with htpasswd -Bbn. */
export function makeHtpasswd(dir: string, username: string, password: string): string {
  const file = join(dir, 'htpasswd');
  writeFileSync(file, tool('htpasswd', ['-Bbn', username, password]));
  return file;
}

function probe(url: string, ca?: string): Promise<number> {
  return new Promise((resolve) => {
    const target = new URL('/v2/', url);
    const send = target.protocol === 'https:' ? httpsRequest : request;
    const req = send(target, { method: 'GET', ...(ca ? { ca } : {}), rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Starts docker-registry on a free loopback port with a fresh storage directory, deletes enabled,
 * in one of five modes: plain HTTP, htpasswd basic auth (plain HTTP on loopback), TLS with a
 * self-signed CA, both of those together, or Docker token auth against a token server the test runs.
 */
export async function startReferenceRegistry(options: ReferenceRegistryOptions): Promise<ReferenceRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-ref-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log:',
    `  level: ${options.tuned ? 'warn' : 'info'}`,
    '  accesslog:',
    `    disabled: ${options.tuned ? 'true' : 'false'}`,
    'storage:',
    ...(options.storageDriver ?? ['  filesystem:', `    rootdirectory: ${join(dir, 'data')}`]),
    '  delete:',
    '    enabled: true',
    ...(options.tuned ? ['  cache:', '    blobdescriptor: inmemory'] : []),
    'http:',
    `  addr: ${host}`,
    '  secret: wharf-test-not-a-secret',
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
  ];
  const registry: Partial<ReferenceRegistry> = { host, dir };
  let scheme = 'http';
  if (options.mode === 'tls' || options.mode === 'tls-htpasswd') {
    const certs = makeCertificates(dir);
    lines.push('  tls:', `    certificate: ${certs.certFile}`, `    key: ${certs.keyFile}`);
    registry.caFile = certs.caFile;
    scheme = 'https';
  }
  if (options.mode === 'htpasswd' || options.mode === 'tls-htpasswd') {
    registry.username = 'wharfuser';
    registry.password = 'wharf-secret-pw';
    const file = makeHtpasswd(dir, registry.username, registry.password);
    lines.push('auth:', '  htpasswd:', '    realm: wharf-test', `    path: ${file}`);
  }
  if (options.mode === 'token') {
    const token = options.token;
    if (!token) throw new Error('token mode needs token settings');
    lines.push('auth:', '  token:', `    realm: ${token.realm}`, `    service: ${token.service}`, `    issuer: ${token.issuer}`, `    rootcertbundle: ${token.rootCertBundle}`);
  }
  const configFile = join(dir, 'config.yml');
  writeFileSync(configFile, lines.join('\n') + '\n' + (options.extraConfig ?? ''));
  const binary = options.binary ?? DOCKER_REGISTRY_BIN;
  let child: ChildProcess;
  try {
    child = spawn(binary, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_TRACES_EXPORTER: 'none', ...options.env } });
  } catch {
    throw new Error(`required tool ${binary} is not installed`);
  }
  // The last 64 KiB is plenty to say why it failed, and keeps a long bench from growing without end.
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-65536));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  const url = `${scheme}://${host}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (spawnError) throw new Error(`cannot run ${binary} (apt package docker-registry): ${spawnError.message}`);
    if (child.exitCode !== null) throw new Error(`docker-registry exited:\n${output}`);
    const status = await probe(url);
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline) throw new Error(`docker-registry did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    ...(registry as ReferenceRegistry),
    pid: child.pid!,
    url,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
