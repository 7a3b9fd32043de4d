import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { WHARF_VERSION } from '../../version.js';
import { normaliseServer } from './login.js';
import { withContext, type CliContext } from '../context.js';

/** The platform as docker prints it (`linux/amd64`), from Node's names. */
function osArch(): string {
  const arches: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };
  return `${platform()}/${arches[arch()] ?? arch()}`;
}

function clientFacts(context: CliContext): Record<string, unknown> {
  const proxies = ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY'].flatMap((name) => {
    const value = process.env[name] ?? process.env[name.toLowerCase()];
    return value ? [[name, value] as const] : [];
  });
  return {
    Version: WHARF_VERSION,
    NodeVersion: process.version,
    OsArch: osArch(),
    ImageStore: context.store.layout.dir,
    Images: context.store.list().length,
    DockerConfig: context.credentials.configPath,
    DockerConfigExists: existsSync(context.credentials.configPath),
    Proxy: Object.fromEntries(proxies),
  };
}

async function serverFacts(context: CliContext, registry: string): Promise<Record<string, unknown>> {
  const host = normaliseServer(registry);
  const info = await context.client(host).serverInfo();
  return {
    Registry: host,
    URL: info.url,
    APIVersion: info.apiVersion ?? '',
    // A registry that is not Wharf says nothing of its version (Distribution does not).
    Product: info.wharfVersion ? 'Wharf' : 'unknown',
    Version: info.wharfVersion ?? '',
  };
}

const print = (lines: Array<[string, unknown]>) => {
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  for (const [key, value] of lines) process.stdout.write(` ${`${key}:`.padEnd(width)} ${String(value)}\n`);
};

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('show the client version, and the server version of a registry when one is given')
    .argument('[registry]', 'a registry host, e.g. localhost:5000')
    .action(async (registry: string | undefined, _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        const client = { Version: WHARF_VERSION, NodeVersion: process.version, OsArch: osArch() };
        const server = registry ? await serverFacts(context, registry) : undefined;
        if (context.options.json) {
          process.stdout.write(JSON.stringify({ Client: client, ...(server ? { Server: server } : {}) }) + '\n');
          return;
        }
        process.stdout.write('Client: Wharf\n');
        print([
          ['Version', client.Version],
          ['Node.js', client.NodeVersion],
          ['OS/Arch', client.OsArch],
        ]);
        if (server) {
          process.stdout.write(`\nServer: ${server.Product === 'Wharf' ? 'Wharf' : 'a registry that does not say what it is'}\n`);
          print([
            ['Registry', server.Registry],
            ['URL', server.URL],
            ['API version', server.APIVersion || 'not given'],
            ...(server.Version ? ([['Version', server.Version]] as Array<[string, unknown]>) : []),
          ]);
        }
      }),
    );

  program
    .command('info')
    .description('show where the client keeps images and credentials, its proxies, and (given a registry) what answers there')
    .argument('[registry]', 'a registry host, e.g. localhost:5000')
    .action(async (registry: string | undefined, _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        const client = clientFacts(context);
        const server = registry ? await serverFacts(context, registry) : undefined;
        if (context.options.json) {
          process.stdout.write(JSON.stringify({ Client: client, ...(server ? { Server: server } : {}) }) + '\n');
          return;
        }
        process.stdout.write('Client:\n');
        const proxy = Object.entries(client.Proxy as Record<string, string>);
        print([
          ['Version', client.Version],
          ['Node.js', client.NodeVersion],
          ['OS/Arch', client.OsArch],
          ['Image store', client.ImageStore],
          ['Images', client.Images],
          ['Credentials', `${client.DockerConfig}${client.DockerConfigExists ? '' : ' (not created yet)'}`],
          ...(proxy.length ? proxy.map(([k, v]) => [k, v] as [string, unknown]) : ([['Proxy', 'none']] as Array<[string, unknown]>)),
        ]);
        if (server) {
          process.stdout.write('\nServer:\n');
          print([
            ['Registry', server.Registry],
            ['URL', server.URL],
            ['API version', server.APIVersion || 'not given'],
            ['Product', server.Version ? `Wharf ${server.Version}` : 'not Wharf (or it does not say)'],
          ]);
        }
      }),
    );
}
