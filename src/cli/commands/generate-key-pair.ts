import type { Command } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import { generateKeyPair } from '../../signing/index.js';
import { keyPassword } from '../signing-keys.js';

export function registerGenerateKeyPair(program: Command): void {
  program
    .command('generate-key-pair')
    .description('write a signing key pair as cosign does: cosign.key (password-encrypted) and cosign.pub, here')
    .option('--output-key-prefix <prefix>', 'name the files PREFIX.key and PREFIX.pub', 'cosign')
    .option('-f, --force', 'overwrite existing key files')
    .action(async (options: { outputKeyPrefix: string; force?: boolean }) => {
      const keyFile = `${options.outputKeyPrefix}.key`;
      const pubFile = `${options.outputKeyPrefix}.pub`;
      for (const file of [keyFile, pubFile]) {
        if (existsSync(file) && !options.force) throw new Error(`${file} exists; remove it or use --force to overwrite`);
      }
      const password = await keyPassword({ confirm: true });
      const pair = await generateKeyPair(password);
      // The private key is for its owner's eyes only.
      writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600 });
      writeFileSync(pubFile, pair.publicKeyPem, { mode: 0o644 });
      process.stderr.write(`Private key written to ${keyFile}\nPublic key written to ${pubFile} (key id ${pair.keyId})\n`);
    });
}
