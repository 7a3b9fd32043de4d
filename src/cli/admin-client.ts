import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** Connection flags shared by `wharf user`, `wharf robot` and `wharf policy`. */
export interface AdminFlags {
  registry?: string;
  username?: string;
  passwordStdin?: boolean;
  cacert?: string;
  insecure?: boolean;
}

export function addAdminFlags(command: Command): Command {
  return command
    .option('--registry <url>', 'registry URL (env WHARF_REGISTRY), e.g. https://registry.example:5000')
    .option('-u, --username <name>', 'an administrator (env WHARF_USERNAME)')
    .option('--password-stdin', "read the administrator's password from the first line of stdin (else env WHARF_PASSWORD)")
    .option('--cacert <file>', 'trust this CA certificate for HTTPS')
    .option('--insecure', 'do not verify the TLS certificate');
}

/** A small JSON client for /admin/v1/ with Basic credentials. */
export class AdminClient {
  private constructor(
    private readonly base: URL,
    private readonly authorization: string,
    private readonly tls: { ca?: Buffer; rejectUnauthorized: boolean },
  ) {}

  static async fromFlags(flags: AdminFlags, stdinLines: () => Promise<string[]>): Promise<AdminClient> {
    const registry = flags.registry ?? process.env.WHARF_REGISTRY;
    if (!registry) throw new Error('no registry: pass --registry URL or set WHARF_REGISTRY');
    const base = new URL(/^https?:\/\//.test(registry) ? registry : `https://${registry}`);
    const username = flags.username ?? process.env.WHARF_USERNAME;
    if (!username) throw new Error('no administrator: pass --username or set WHARF_USERNAME');
    const password = flags.passwordStdin ? (await stdinLines())[0] : process.env.WHARF_PASSWORD;
    if (password === undefined || password === '') throw new Error("no password: pass --password-stdin or set WHARF_PASSWORD");
    const tls: { ca?: Buffer; rejectUnauthorized: boolean } = { rejectUnauthorized: !flags.insecure };
    if (flags.cacert) tls.ca = readFileSync(flags.cacert);
    return new AdminClient(base, `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`, tls);
  }

  /** Sends one request; resolves with the parsed JSON (undefined for 204), throws with the registry's message. */
  call(method: string, path: string, body?: unknown): Promise<any> {
    const url = new URL(`/admin/v1/${path}`, this.base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          headers: {
            Authorization: this.authorization,
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          },
          ...(url.protocol === 'https:' ? this.tls : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: any;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const first = json?.errors?.[0];
              reject(new Error(`${res.statusCode} ${first?.code ?? ''}: ${first?.message ?? text}`.trim()));
            } else resolve(json);
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
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
