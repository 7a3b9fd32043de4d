import type { Command } from 'commander';
import { isClientError, signImage, type ManifestHead, type SignatureAttachment } from '../../client/index.js';
import { parseReference } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { collect, parseAnnotations, signerFromFile } from '../signing-keys.js';

export function registerSign(program: Command): void {
  program
    .command('sign')
    .description('sign an image as cosign does, storing the signature in its repository')
    .argument('<image>', 'image reference (a tag is resolved to its digest first)')
    .requiredOption('--key <file>', 'private key: cosign.key (password from COSIGN_PASSWORD or a prompt) or PEM PKCS#8')
    .option('-a, --annotations <key=value>', 'a claim added to the signed payload (repeatable)', collect)
    .option('--attach <mode>', 'tag (sha256-HEX.sig, any registry) or referrers (OCI 1.1 subject)', 'tag')
    .option('--recursive', 'also sign each platform image of a multi-arch index')
    .action(async (image: string, options: { key: string; annotations?: string[]; attach: string; recursive?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        if (options.attach !== 'tag' && options.attach !== 'referrers') throw new Error(`--attach ${options.attach}: expected tag or referrers`);
        const annotations = parseAnnotations(options.annotations, '-a');
        const ref = parseReference(image);
        const signer = await signerFromFile(options.key);
        const client = context.client(ref.registry);
        const reference = ref.digest ?? ref.tag ?? 'latest';
        let head: ManifestHead | undefined;
        try {
          head = await client.headManifest(ref.repository, reference);
        } catch (error) {
          // A registry enforcing signatures will not show an unsigned manifest, even to its signer:
          // the tag form needs only the digest, which the signer names.
          if (!isClientError(error, 'denied') || !ref.digest || options.attach !== 'tag' || options.recursive) {
            if (isClientError(error, 'denied')) throw new Error(`${error.message}\nhint: if the registry refuses unsigned images, sign by digest (IMAGE@sha256:…) without --recursive or --attach referrers`);
            throw error;
          }
          head = { digest: ref.digest, mediaType: '', size: 0 };
        }
        if (!head) throw new Error(`${image}: manifest unknown`);
        if (!ref.digest && !context.options.quiet) {
          process.stderr.write(`Signing ${ref.registry}/${ref.repository}@${head.digest} (what the tag ${reference} points at now)\n`);
        }
        const signed = await signImage(client, ref.registry, ref.repository, head, {
          signer,
          annotations,
          attach: options.attach as SignatureAttachment,
          ...(options.recursive ? { recursive: true } : {}),
        });
        for (const s of signed) {
          const where = s.tag ? `${ref.registry}/${ref.repository}:${s.tag}` : `${ref.registry}/${ref.repository}@${s.signatureManifest} (referrer)`;
          if (!context.options.quiet) process.stderr.write(`Signed ${s.digest} with key ${signer.identity}: ${where}\n`);
        }
      }),
    );
}
