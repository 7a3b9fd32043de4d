import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPrivateKey } from '../src/signing/index.js';
import { startOnTerminal } from './support/terminal.js';

/** Without COSIGN_PASSWORD, generate-key-pair asks for the password twice on the terminal, as cosign does, without echoing it. */
const work = mkdtempSync(join(tmpdir(), 'wharf-signing-terminal-'));
after(() => rmSync(work, { recursive: true, force: true }));
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work };

test('generate-key-pair asks twice for the password; the key opens with it', async () => {
  const prefix = join(work, 'typed');
  const session = startOnTerminal(['generate-key-pair', '--output-key-prefix', prefix], env);
  await session.waitFor('Enter password for private key: ');
  session.type('typed secret\r');
  const typed = session.raw().length;
  await session.waitFor('Enter password for private key again: ', typed);
  session.type('typed secret\r');
  const { code, raw } = await session.result;
  assert.equal(code, 0, raw);
  assert.doesNotMatch(raw, /typed secret/, 'the password was echoed');
  const key = await readPrivateKey(readFileSync(`${prefix}.key`, 'utf8'), async () => 'typed secret');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
});

test('two different answers write nothing', async () => {
  const prefix = join(work, 'mismatch');
  const session = startOnTerminal(['generate-key-pair', '--output-key-prefix', prefix], env);
  await session.waitFor('Enter password for private key: ');
  session.type('one\r');
  const typed = session.raw().length;
  await session.waitFor('again: ', typed);
  session.type('two\r');
  const { code, raw } = await session.result;
  assert.equal(code, 1, raw);
  assert.match(raw, /passwords do not match/);
  assert.equal(existsSync(`${prefix}.key`), false);
});
