import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore, type Credentials } from './credentials.js';
import { RegistryClient } from './registry-client.js';
import { parseRegistryLocation } from './registry-host.js';
import { RegistryTransport } from './registry-transport.js';

/** How a user (or a server's config) reaches registries: the CLI's global flags, as data. */
export interface ConnectionSettings {
  /** Extra CA certificate files for every registry (`--ca-cert`), besides each host's certs.d. */
  caCertFiles?: string[];
  /** Skip TLS verification and allow plain HTTP (`--insecure`). */
  insecure?: boolean;
  /** Talk plain HTTP to registries named without a scheme (`--plain-http`). */
  plainHttp?: boolean;
  /** Where logins are kept; the docker config by default. */
  credentialStore?: CredentialStore;
  /** For the certs.d lookup; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Seconds a connection may stay silent before it is cut and retried (`--timeout`). */
  timeoutSeconds?: number;
}

/** What one connection may do differently from the settings. */
export interface ConnectOverrides {
  /** Use these instead of stored credentials (verifying a login, an admin's password). */
  credentials?: Credentials;
  /** Basic credentials from the first request, no challenge followed (see AuthTransport). */
  preemptiveBasic?: boolean;
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

/**
 * Turns a registry as a user names it (`host[:port]`, or a URL whose scheme is then the only one
 * tried) plus connection settings into configured transports and clients: TLS trust from
 * `--ca-cert` files and the host's certs.d, `--insecure`, `--plain-http`, the idle timeout, and
 * credentials from the store, looked up only when the registry asks.
 *
 * `client()` shares one client per registry for the connector's life; `close()` closes them.
 * `connect()` and `transport()` make new ones that the caller closes.
 */
export class RegistryConnector {
  private readonly clients = new Map<string, RegistryClient>();
  private store: CredentialStore | undefined;

  constructor(readonly settings: ConnectionSettings = {}) {}

  /** The shared client for a registry, made on first use. Throws on a malformed URL. */
  client(registry: string): RegistryClient {
    let client = this.clients.get(registry);
    if (!client) {
      client = this.connect(registry);
      this.clients.set(registry, client);
    }
    return client;
  }

  /** A new client for a registry, closed by the caller. */
  connect(registry: string, overrides: ConnectOverrides = {}): RegistryClient {
    return new RegistryClient({ transport: this.transport(registry, overrides) });
  }

  /** A new transport stack for a registry (for APIs beside the distribution API), closed by the caller. */
  transport(registry: string, overrides: ConnectOverrides = {}): RegistryTransport {
    const { settings } = this;
    const location = parseRegistryLocation(registry);
    const env = settings.env ?? process.env;
    const caCerts = [...registryCaCerts(location.registry, env), ...(settings.caCertFiles ?? []).map((f) => readFileSync(f, 'utf8'))];
    const scheme = location.scheme ?? (settings.plainHttp ? 'http' : undefined);
    return new RegistryTransport({
      registry: location.registry,
      tls: { caCerts },
      ...(scheme ? { scheme } : {}),
      ...(settings.insecure ? { insecure: true } : {}),
      ...(settings.timeoutSeconds !== undefined ? { idleTimeoutMs: settings.timeoutSeconds * 1000 } : {}),
      ...(overrides.preemptiveBasic ? { preemptiveBasic: true } : {}),
      credentials: overrides.credentials ?? (() => this.credentialStore().get(location.registry)),
    });
  }

  private credentialStore(): CredentialStore {
    return (this.store ??= this.settings.credentialStore ?? new CredentialStore());
  }

  /** Closes every shared client. */
  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** A RegistryClient for a host (or URL) with the user's TLS trust and stored credentials; the caller closes it. */
export function connectRegistry(registry: string, options: ConnectionSettings & ConnectOverrides = {}): RegistryClient {
  const { credentials, preemptiveBasic, ...settings } = options;
  return new RegistryConnector(settings).connect(registry, { ...(credentials ? { credentials } : {}), ...(preemptiveBasic ? { preemptiveBasic } : {}) });
}
