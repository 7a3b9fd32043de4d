import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DOCKER_HUB } from '../oci/reference.js';
import { ClientError } from './client-error.js';
import { isLoopbackHost } from './registry-host.js';

/** What a registry login holds: a user and password, or an identity (refresh) token. */
export interface Credentials {
  username: string;
  password?: string;
  /** An OAuth refresh token, traded at the token endpoint instead of a password. */
  identityToken?: string;
}

/** Credentials as given, or a function that finds them (called at most once, when a registry first asks). */
export type CredentialsSource = Credentials | (() => Promise<Credentials | undefined>);

/** `Basic base64(user:password)`. */
export function basicAuthorization(credentials: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/**
 * Refuses to send secrets over plain HTTP anywhere but loopback: throws
 * ClientError('insecure-credentials') for an `http:` URL to another host.
 */
export function assertMaySendCredentials(url: URL, registry: string): void {
  if (url.protocol === 'https:' || isLoopbackHost(url.hostname)) return;
  throw new ClientError('insecure-credentials', `refusing to send credentials to ${url.host} over plain HTTP; use HTTPS for this registry`, { registry });
}

/** The key docker uses for Docker Hub in config.json and with credential helpers. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  [other: string]: unknown;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [other: string]: unknown;
}

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/** The key for a registry host in `auths` and for credential helpers. */
export function authKey(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_AUTH_KEY : registry;
}

/** Strips a scheme and path so that `https://host:5000/v2/` matches `host:5000`, as docker does. */
function normaliseKey(key: string): string {
  let host = key.replace(/^https?:\/\//, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host;
}

/**
 * Reads and writes registry credentials where docker keeps them: `auths` entries in config.json,
 * per-registry `credHelpers`, or the `credsStore` helper, talking to `docker-credential-NAME`
 * with the helper protocol (get/store/erase on stdin).
 */
export class CredentialStore {
  constructor(readonly configPath: string = dockerConfigPath()) {}

  private read(): DockerConfig {
    try {
      return JSON.parse(readFileSync(this.configPath, 'utf8')) as DockerConfig;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new Error(`cannot read ${this.configPath}: ${(error as Error).message}`);
    }
  }

  private write(config: DockerConfig): void {
    mkdirSync(dirname(this.configPath), { recursive: true, mode: 0o700 });
    const temp = `${this.configPath}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(config, null, '\t') + '\n', { mode: 0o600 });
    renameSync(temp, this.configPath);
  }

  /** The helper that holds this registry's secret, if any: `credHelpers` first, then `credsStore`. */
  private helperFor(config: DockerConfig, registry: string): string | undefined {
    for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
      if (normaliseKey(key) === registry) return helper;
    }
    return config.credsStore || undefined;
  }

  /** The credentials for a registry host; undefined when none are stored. */
  async get(registry: string): Promise<Credentials | undefined> {
    const config = this.read();
    const helper = this.helperFor(config, registry);
    if (helper) {
      const found = await getFromHelper(helper, authKey(registry));
      if (found) return found;
      if (Object.keys(config.credHelpers ?? {}).some((k) => normaliseKey(k) === registry)) return undefined;
    }
    for (const [key, entry] of Object.entries(config.auths ?? {})) {
      if (normaliseKey(key) !== registry) continue;
      return fromAuthEntry(entry);
    }
    return undefined;
  }

  /**
   * Saves credentials with the registry's helper when it has one, else in `auths`; says which
   * file holds them in the clear (base64 is no encryption) when no helper took them.
   */
  async store(registry: string, credentials: Credentials): Promise<{ plainFile?: string }> {
    const config = this.read();
    const helper = this.helperFor(config, registry);
    const key = authKey(registry);
    if (helper) {
      const secret = credentials.identityToken ?? credentials.password ?? '';
      const username = credentials.identityToken ? '<token>' : credentials.username;
      await runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: username, Secret: secret }));
      config.auths ??= {};
      config.auths[key] = {};
    } else {
      config.auths ??= {};
      const entry: AuthEntry = {};
      if (credentials.identityToken) {
        entry.auth = Buffer.from(`${credentials.username}:`).toString('base64');
        entry.identitytoken = credentials.identityToken;
      } else {
        entry.auth = Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64');
      }
      config.auths[key] = entry;
    }
    this.write(config);
    return helper ? {} : { plainFile: this.configPath };
  }

  /** Forgets a registry's credentials; returns false when there were none. */
  async erase(registry: string): Promise<boolean> {
    const config = this.read();
    let found = false;
    for (const key of Object.keys(config.auths ?? {})) {
      if (normaliseKey(key) === registry) {
        delete config.auths![key];
        found = true;
      }
    }
    const helper = this.helperFor(config, registry);
    if (helper) {
      try {
        await runHelper(helper, 'erase', authKey(registry));
        found = true;
      } catch {
        // The helper had nothing for this registry.
      }
    }
    if (found) this.write(config);
    return found;
  }
}

function fromAuthEntry(entry: AuthEntry): Credentials | undefined {
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  if (entry.identitytoken) return { username: username ?? '', identityToken: entry.identitytoken };
  if (username === undefined && password === undefined) return undefined;
  return { username: username ?? '', password: password ?? '' };
}

async function getFromHelper(helper: string, serverUrl: string): Promise<Credentials | undefined> {
  let output: string;
  try {
    output = await runHelper(helper, 'get', serverUrl);
  } catch (error) {
    if (/credentials not found/i.test((error as Error).message)) return undefined;
    throw error;
  }
  const doc = JSON.parse(output) as { Username?: string; Secret?: string };
  if (!doc.Secret) return undefined;
  if (doc.Username === '<token>') return { username: '', identityToken: doc.Secret };
  return { username: doc.Username ?? '', password: doc.Secret };
}

/** Runs `docker-credential-NAME ACTION` with input on stdin; rejects with the helper's message. */
function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) => reject(new Error(`credential helper docker-credential-${helper}: ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`credential helper docker-credential-${helper} ${action}: ${(stdout || stderr).trim()}`));
    });
    child.stdin.end(input);
  });
}
