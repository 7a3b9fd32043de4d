/**
 * What an operator reads: JSON log lines with ISO times and level names, text lines without
 * colour codes unless on a terminal (checked through a pseudo-terminal), request lines with the
 * user, bytes, request id and OCI error code, the version at start, one "htpasswd loaded" line
 * however many processes serve; and starts that fail (port in use, storage not writable, no
 * htpasswd file) with one clear line, no stack trace and a non-zero exit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatRecord } from '../src/log/text-format.js';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { raw } from './support/http.js';
import { freePort } from './support/reference-registry.js';
import { requireTool, run, waitFor } from './support/tools.js';
import { startWharf, WHARF_BIN } from './support/wharf-process.js';

const work = mkdtempSync(join(tmpdir(), 'wharf-logs-'));
after(() => rmSync(work, { recursive: true, force: true }));

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function jsonLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('JSON logs', () => {
  it('carry ISO times and level names, the version at start, and request lines with user, bytes, request id and error code', async () => {
    const htpasswd = join(work, 'htpasswd');
    writeHtpasswd(htpasswd, { alice: 'alice-password' });
    const config = join(work, 'auth.yml');
    writeFileSync(config, `auth:\n  htpasswd:\n    realm: test\n    path: ${htpasswd}\n`);
    const wharf = await startWharf({ args: [config, '--workers', '2'] });
    try {
      const denied = await raw(wharf.url, 'GET', '/v2/app/manifests/latest');
      assert.equal(denied.status, 401);
      const missing = await raw(wharf.url, 'GET', '/v2/app/manifests/latest', { headers: { Authorization: basic('alice', 'alice-password') } });
      assert.equal(missing.status, 404);
      const requestId = missing.header('x-request-id');
      assert.ok(requestId);
      await waitFor(() => wharf.output().includes(requestId), 'the request line');
      const lines = jsonLines(wharf.output());
      for (const line of lines) {
        assert.equal(typeof line.level, 'string', JSON.stringify(line));
        assert.match(String(line.time), ISO_TIME);
      }
      assert.equal(lines[0]!.msg, `starting Wharf ${VERSION}`);
      assert.equal(lines[0]!.version, VERSION);
      assert.equal(lines.find((l) => l.msg === 'wharf registry listening')?.version, VERSION);
      assert.equal(lines.filter((l) => l.msg === 'htpasswd file loaded').length, 1, 'one line, not one per process');

      const line = lines.find((l) => l.requestId === requestId)!;
      assert.equal(line.msg, 'request');
      assert.equal(line.level, 'info');
      assert.equal(line.status, 404);
      assert.equal(line.user, 'alice');
      assert.equal(line.error, 'MANIFEST_UNKNOWN');
      assert.ok(Number(line.bytesOut) > missing.body.length, 'bytes sent, headers included');
      assert.ok(Number(line.bytesIn) >= 0);
      const refused = lines.find((l) => l.msg === 'request' && l.status === 401)!;
      assert.equal(refused.error, 'UNAUTHORIZED');
      assert.equal(refused.user, undefined);
    } finally {
      await wharf.dispose();
    }
  });
});

/** Starts `wharf serve` on a free port with `env`, through `command` (a pseudo-terminal or not). */
async function serveAndRequest(env: Record<string, string>, overTerminal: boolean): Promise<string> {
  const port = await freePort();
  const data = mkdtempSync(join(work, 'data-'));
  const serve = [WHARF_BIN, 'serve', '--addr', `127.0.0.1:${port}`, '--data', data, '--workers', '1'];
  const child = overTerminal
    ? spawn('script', ['-qefc', [process.execPath, ...serve].map((a) => `'${a}'`).join(' '), '/dev/null'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(process.execPath, serve, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor(() => output.includes('wharf registry listening'), 'wharf to listen');
    for (let i = 0; i < 3; i += 1) assert.equal((await raw(`http://127.0.0.1:${port}`, 'GET', '/v2/')).status, 200);
    await waitFor(() => output.split('\n').filter((l) => / request /.test(l)).length === 3, 'three request lines');
  } finally {
    // Under script(1), the server is script's child: interrupt the terminal's foreground job.
    if (overTerminal) child.stdin!.write('\u0003');
    else child.kill('SIGTERM');
    await exited;
  }
  return output;
}

describe('text logs', () => {
  it('are one plain line per request, without colour codes, when stdout is not a terminal', async () => {
    const output = await serveAndRequest({ REGISTRY_LOG_FORMATTER: 'text' }, false);
    assert.doesNotMatch(output, /\u001b\[/, 'no escape codes in a pipe');
    const requests = output.split('\n').filter((l) => / request /.test(l));
    assert.equal(requests.length, 3);
    for (const line of requests) {
      assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  request requestId=[0-9a-f-]{36} method=GET path=\/v2\/ status=200 bytesIn=\d+ bytesOut=\d+ /);
    }
    assert.match(output, new RegExp(`INFO  starting Wharf ${VERSION.replace(/\./g, '\\.')} version=`));
  });

  it('colour the level on a terminal (a pseudo-terminal through script)', async () => {
    requireTool('script');
    const output = await serveAndRequest({}, true);
    assert.match(output, /\u001b\[32mINFO \u001b\[0m request /, 'auto format on a terminal: text, level coloured');
    assert.doesNotMatch(output, /^\{/m, 'no JSON on a terminal');
  });
});

describe('the text line format', () => {
  it('quotes values with spaces, shows an error by its message, and its stack below only at error level', () => {
    const time = '2026-01-02T03:04:05.678Z';
    assert.equal(
      formatRecord({ level: 'info', time, service: 'wharf', msg: 'request', path: '/v2/', userAgent: 'skopeo/1.13 (linux)', status: 200 }, { colour: false }),
      `${time} INFO  request path=/v2/ userAgent="skopeo/1.13 (linux)" status=200`,
    );
    const err = { message: 'disk on fire', code: 'EIO', stack: 'Error: disk on fire\n    at write (file.js:1:1)' };
    assert.equal(formatRecord({ level: 'warn', time, msg: 'retrying', err }, { colour: false }), `${time} WARN  retrying err="disk on fire (EIO)"`);
    assert.equal(
      formatRecord({ level: 'error', time, msg: 'unexpected error', err }, { colour: true }),
      `${time} \u001b[31mERROR\u001b[0m unexpected error err="disk on fire (EIO)"\n    Error: disk on fire\n        at write (file.js:1:1)`,
    );
  });
});

describe('a start that cannot succeed', () => {
  async function failedStart(args: string[]): Promise<{ code: number | null; output: string }> {
    const result = await run(process.execPath, [WHARF_BIN, 'serve', ...args], { timeoutMs: 30_000 });
    return { code: result.code, output: result.stdout + result.stderr };
  }

  function assertOneClearLine(output: string, message: RegExp): void {
    const lines = jsonLines(output);
    assert.equal(output.trim().split('\n').length, lines.length, 'nothing but log lines');
    const fatal = lines.filter((l) => l.level === 'fatal');
    assert.equal(fatal.length, 1, output);
    assert.match(String(fatal[0]!.msg), message);
    assert.equal(fatal[0]!.err, undefined, 'no stack trace');
    assert.doesNotMatch(output, /\n\s+at /);
  }

  it('says the port is in use', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
    const port = (holder.address() as { port: number }).port;
    try {
      for (const workers of ['1', '2']) {
        const { code, output } = await failedStart(['--addr', `127.0.0.1:${port}`, '--data', join(work, 'port'), '--workers', workers]);
        assert.equal(code, 1);
        assertOneClearLine(output, new RegExp(`^cannot start the registry: 127\\.0\\.0\\.1:${port} is already in use`));
      }
    } finally {
      holder.close();
    }
  });

  it('says the storage root is not writable', async () => {
    // Nobody, root included, may create directories in /sys.
    const { code, output } = await failedStart(['--addr', '127.0.0.1:0', '--data', '/sys/wharf-test-storage']);
    assert.equal(code, 1);
    assertOneClearLine(output, /^cannot start the registry: the storage root \/sys\/wharf-test-storage is not writable \(E(PERM|ACCES|ROFS)/);
  });

  it('says how to create a missing htpasswd file', async () => {
    const missing = join(work, 'no-such-htpasswd');
    const config = join(work, 'missing-htpasswd.yml');
    writeFileSync(config, `auth:\n  htpasswd:\n    realm: test\n    path: ${missing}\n`);
    const { code, output } = await failedStart([config, '--addr', '127.0.0.1:0', '--data', join(work, 'ht')]);
    assert.equal(code, 1);
    assertOneClearLine(output, new RegExp(`^cannot start the registry: auth\\.htpasswd\\.path: ${missing} does not exist; create it with "htpasswd -cB ${missing} USER"`));
  });
});
