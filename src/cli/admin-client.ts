import { Option, type Command } from 'commander';
import { readBody, RegistryConnector, type RegistryTransport } from '../client/index.js';

/** Connection flags shared by `wharf user`, `wharf robot` and `wharf policy`. */
export interface AdminFlags {
  registry?: string;
  username?: string;
  passwordStdin?: boolean;
  /** `--ca-cert` (repeatable, also accepted before the command as the global flag). */
  caCert?: string[];
  /** The older spelling `--cacert`, still accepted. */
  cacert?: string;
  insecure?: boolean;
}

export function addAdminFlags(command: Command): Command {
  const collect = (value: string, previous: string[] = []) => [...previous, value];
  return (
    command
      .option('--registry <url>', 'registry URL (env WHARF_REGISTRY), e.g. https://registry.example:5000')
      .option('-u, --username <name>', 'an administrator (env WHARF_USERNAME)')
      .option('--password-stdin', "read the administrator's password from the first line of stdin (else env WHARF_PASSWORD)")
      .option('--ca-cert <file>', 'trust this CA certificate for HTTPS (repeatable)', collect)
      .addOption(new Option('--cacert <file>', 'the older spelling of --ca-cert').hideHelp())
      .option('--insecure', 'do not verify the TLS certificate')
      // --ca-cert and --insecure are also the program's global flags, and commander hands a flag
      // the program knows to the program wherever it stands: fold those values into these flags.
      .hook('preAction', (_command, action) => {
        for (const [key, value] of Object.entries(action.optsWithGlobals())) {
          if (action.getOptionValue(key) === undefined) action.setOptionValue(key, value);
        }
      })
  );
}

/**
 * A small JSON client for /admin/v1/ with Basic credentials, over the same transport stack as the
 * registry client (one TLS handling: --ca-cert, certs.d, --insecure; no password over plain HTTP
 * to a host that is not loopback). Only GETs are retried: a repeated POST could act twice.
 */
export class AdminClient {
  private constructor(private readonly transport: RegistryTransport) {}

  static async fromFlags(flags: AdminFlags, stdinLines: () => Promise<string[]>): Promise<AdminClient> {
    const registry = flags.registry ?? process.env.WHARF_REGISTRY;
    if (!registry) throw new Error('no registry: pass --registry URL or set WHARF_REGISTRY');
    const username = flags.username ?? process.env.WHARF_USERNAME;
    if (!username) throw new Error('no administrator: pass --username or set WHARF_USERNAME');
    const password = flags.passwordStdin ? (await stdinLines())[0] : process.env.WHARF_PASSWORD;
    if (password === undefined || password === '') throw new Error("no password: pass --password-stdin or set WHARF_PASSWORD");
    const caCertFiles = [...(flags.caCert ?? []), ...(flags.cacert ? [flags.cacert] : [])];
    const connector = new RegistryConnector({ ...(caCertFiles.length > 0 ? { caCertFiles } : {}), ...(flags.insecure ? { insecure: true } : {}) });
    // A bare host means HTTPS, and only HTTPS, as it always has for the admin commands.
    const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(registry) ? registry : `https://${registry}`;
    return new AdminClient(connector.transport(url, { credentials: { username, password }, preemptiveBasic: true }));
  }

  /** Sends one request; resolves with the parsed JSON (undefined for 204), throws with the registry's message. */
  async call(method: string, path: string, body?: unknown): Promise<any> {
    const url = new URL(`/admin/v1/${path}`, await this.transport.baseUrl());
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await this.transport.roundTrip({
      method,
      url,
      headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
      ...(payload ? { body: payload } : {}),
      retry: method === 'GET',
    });
    const text = (await readBody(res)).toString('utf8');
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if ((res.statusCode ?? 500) >= 400) {
      const first = json?.errors?.[0];
      throw new Error(`${res.statusCode} ${first?.code ?? ''}: ${first?.message ?? text}`.trim());
    }
    return json;
  }
}

/** Lines of standard input, read once (for --password-stdin and new passwords). */
export function stdinReader(): () => Promise<string[]> {
  let lines: Promise<string[]> | undefined;
  return () =>
    (lines ??= new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      process.stdin.on('data', (c: Buffer) => chunks.push(c));
      process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8').split(/\r?\n/)));
      process.stdin.on('error', reject);
    }));
}

/** Runs a command body, printing an error and exiting 1 on failure. */
export async function run(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    process.stderr.write(`wharf: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
