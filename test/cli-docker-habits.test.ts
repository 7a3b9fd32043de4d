import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { startWharfUnderTest, type RegistryUnderTest } from './support/registries-under-test.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { WHARF_BIN } from './support/wharf-process.js';

/**
 * What a docker, crane, regctl or skopeo user expects of the `wharf` client, item by item
 * (issue 11 section 2), against `wharf serve` on loopback.
 */

/** Runs wharf with its stdout closed before it writes: every write meets EPIPE. */
function runWithClosedStdout(user: CliUser, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WHARF_BIN, ...args], { env: user.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('wharf client habits of docker users', () => {
  let registry: RegistryUnderTest;
  let images: TestLayout;
  let user: CliUser;
  let work: string;
  let R: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-habits-'));
    images = await writeTestLayout(join(work, 'layout'));
    registry = await startWharfUnderTest('plain');
    R = registry.host;
    user = cliUser();
    await user.ok(['copy', `oci:${images.dir}:base`, `${R}/seed/base:v1`]);
    await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${R}/seed/multi:v1`]);
    await user.ok(['copy', `oci:${images.dir}:small`, `${R}/seed/small:v1`]);
  });

  after(async () => {
    user?.dispose();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('writing to a closed pipe exits quietly with status 0', async () => {
    await user.ok(['pull', `${R}/seed/small:v1`]);
    for (const args of [['tags', `${R}/seed/base`], ['images', '-q'], ['images'], ['catalog', R]]) {
      const result = await runWithClosedStdout(user, args);
      assert.equal(result.stderr, '', `wharf ${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.code, 0, `wharf ${args.join(' ')}`);
    }
    // And as a shell user writes it: the pipeline's first command succeeds, silently.
    const shell = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', ['-c', `"${process.execPath}" "${WHARF_BIN}" tags ${R}/seed/base | head -1; echo "status=\${PIPESTATUS[0]}" >&2`], { env: user.env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', () => resolve({ stdout, stderr }));
    });
    assert.equal(shell.stdout, 'v1\n');
    assert.equal(shell.stderr, 'status=0\n');
  });
});
