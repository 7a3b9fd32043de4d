import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore, type Credentials } from './credentials.js';
import { RegistryClient } from './registry-client.js';

export interface ConnectOptions {
  /** Extra CA certificate files (`--ca-cert`). */
  caCertFiles?: string[];
  insecure?: boolean;
  plainHttp?: boolean;
  /** Where logins are kept; the docker config by default. */
  credentialStore?: CredentialStore;
  /** Use these instead of stored credentials (verifying a login). */
  credentials?: Credentials;
  env?: NodeJS.ProcessEnv;
  /** Seconds a connection may stay silent before it is cut and retried. */
  timeoutSeconds?: number;
}

/**
 * Directories holding per-registry CA certificates, as docker and podman read them:
 * `/etc/docker/certs.d/HOST:PORT/*.crt`, `/etc/containers/certs.d/…` and the rootless
 * `~/.config/containers/certs.d/…`. `WHARF_CERTS_D` (colon-separated) replaces the list.
 */
export function certsDirectories(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.WHARF_CERTS_D) return env.WHARF_CERTS_D.split(':').filter(Boolean);
  const home = env.HOME || homedir();
  return ['/etc/docker/certs.d', '/etc/containers/certs.d', join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'certs.d')];
}

/** The PEM CA certificates configured for one registry host. */
export function registryCaCerts(registry: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const certs: string[] = [];
  for (const root of certsDirectories(env)) {
    const dir = join(root, registry);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith('.crt')) certs.push(readFileSync(join(dir, name), 'utf8'));
    }
  }
  return certs;
}

/** A RegistryClient for a host with the user's TLS trust and stored credentials. */
export function connectRegistry(registry: string, options: ConnectOptions = {}): RegistryClient {
  const env = options.env ?? process.env;
  const caCerts = [...registryCaCerts(registry, env), ...(options.caCertFiles ?? []).map((f) => readFileSync(f, 'utf8'))];
  const store = options.credentialStore ?? new CredentialStore();
  return new RegistryClient({
    registry,
    tls: { caCerts },
    ...(options.insecure ? { insecure: true } : {}),
    ...(options.plainHttp ? { plainHttp: true } : {}),
    ...(options.timeoutSeconds !== undefined ? { idleTimeoutMs: options.timeoutSeconds * 1000 } : {}),
    credentials: options.credentials ?? (() => store.get(registry)),
  });
}
