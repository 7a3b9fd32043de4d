import type { Command } from 'commander';
import { verifyImage } from '../../client/index.js';
import { parseReference } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { collect, parseAnnotations, verifiersFromFiles } from '../signing-keys.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description("check an image's cosign signatures against public keys; fails unless one verifies")
    .argument('<image...>', 'image references')
    .requiredOption('--key <file>', 'public key (cosign.pub, PEM); repeat to accept any of several keys', collect)
    .option('-a, --annotations <key=value>', 'a claim the signed payload must carry (repeatable)', collect)
    .option('-o, --output <format>', 'text, or json (the verified payloads)', 'text')
    .action(async (images: string[], options: { key: string[]; annotations?: string[]; output: string }, command: Command) =>
      withContext(command, async (context) => {
        if (options.output !== 'text' && options.output !== 'json') throw new Error(`--output ${options.output}: expected text or json`);
        const verifiers = verifiersFromFiles(options.key);
        const annotations = parseAnnotations(options.annotations, '--annotations');
        const payloads: unknown[] = [];
        let failed = false;
        for (const image of images) {
          const ref = parseReference(image);
          const client = context.client(ref.registry);
          const head = await client.headManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
          if (!head) throw new Error(`${image}: manifest unknown`);
          const name = `${ref.registry}/${ref.repository}@${head.digest}`;
          const result = await verifyImage(client, ref.repository, head.digest, verifiers, { annotations });
          if (result.verified.length === 0) {
            failed = true;
            if (result.found === 0) process.stderr.write(`wharf: ${image}: no signatures found for ${name}\n`);
            else process.stderr.write(`wharf: ${image}: no valid signature for ${name}:\n${result.rejected.map((r) => `  - ${r}\n`).join('')}`);
            continue;
          }
          if (!context.options.quiet) {
            process.stderr.write(
              `Verification for ${name} --\nThe following checks were performed on each of these signatures:\n` +
                '  - The cosign claims were validated (digest and repository)\n  - The signatures were verified against the specified public key\n',
            );
          }
          for (const v of result.verified) {
            payloads.push(JSON.parse(v.payload.toString('utf8')));
            if (options.output === 'text') process.stdout.write(`${name}: signed by key ${v.identity} (${v.source})${formatAnnotations(v.annotations)}\n`);
          }
        }
        if (options.output === 'json') process.stdout.write(JSON.stringify(payloads) + '\n');
        if (failed) process.exitCode = 1;
      }),
    );
}

function formatAnnotations(annotations: Record<string, unknown>): string {
  const pairs = Object.entries(annotations).map(([k, v]) => `${k}=${String(v)}`);
  return pairs.length > 0 ? ` ${pairs.join(' ')}` : '';
}
