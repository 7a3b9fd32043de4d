import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser } from './support/cli.js';
import { raw } from './support/http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST, type Blob } from './support/oci-fixtures.js';
import { pushImage } from './support/push.js';
import { freePort, startReferenceRegistry } from './support/reference-registry.js';
import { startReceiver, type WebhookReceiver } from './support/webhook-receiver.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A `notifications:` section with one endpoint per entry (the YAML that both registries read). */
function notificationsYaml(endpoints: Array<Record<string, string>>, options: { includeReferences?: boolean } = {}): string {
  const lines = ['notifications:'];
  if (options.includeReferences) lines.push('  events:', '    includereferences: true');
  lines.push('  endpoints:');
  for (const endpoint of endpoints) {
    const [first, ...rest] = Object.entries(endpoint);
    lines.push(`    - ${first![0]}: ${first![1]}`);
    for (const [key, value] of rest) lines.push(`      ${key}: ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wharf-notify-'));
}

/** Starts Wharf with a config file holding `yaml`. */
async function wharfWith(dir: string, yaml: string, options: { dataDir?: string } = {}): Promise<WharfProcess> {
  const file = join(dir, 'config.yml');
  writeFileSync(file, yaml);
  return startWharf({ args: [file], ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}) });
}

/** A two-step upload (POST, then PUT with the digest): what both registries take. */
async function uploadBlob(base: string, repository: string, content: Blob): Promise<void> {
  const started = await raw(base, 'POST', `/v2/${repository}/blobs/uploads/`);
  assert.equal(started.status, 202, started.body.toString());
  const location = new URL(started.header('location')!, base);
  location.searchParams.set('digest', content.digest);
  const done = await raw(base, 'PUT', `${location.pathname}${location.search}`, { headers: { 'Content-Type': 'application/octet-stream' }, body: content.data });
  assert.equal(done.status, 201, done.body.toString());
}

/**
 * The same push, pulls and mount against a registry, waiting after each step for its event so
 * that both registries' events come in the same order.
 */
async function scenario(base: string, receiver: WebhookReceiver): Promise<void> {
  const layer = blob('notification layer bytes');
  const config = configBlob({ created: 'notifications' });
  const manifest = imageManifest(config, [layer]);
  const headers = { 'User-Agent': 'wharf-notify-test/1.0' };
  let expected = 0;
  const step = async (work: () => Promise<void>) => {
    await work();
    expected += 1;
    await receiver.waitFor((r) => r.events().length >= expected);
  };
  await step(() => uploadBlob(base, 'notify/app', layer));
  await step(() => uploadBlob(base, 'notify/app', config));
  await step(async () => {
    const res = await raw(base, 'PUT', '/v2/notify/app/manifests/v1', { headers: { ...headers, 'Content-Type': OCI_MANIFEST }, body: manifest.data });
    assert.equal(res.status, 201);
  });
  await step(async () => {
    const res = await raw(base, 'GET', '/v2/notify/app/manifests/v1', { headers: { ...headers, Accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
  });
  await step(async () => {
    const res = await raw(base, 'HEAD', `/v2/notify/app/manifests/${manifest.digest}`, { headers: { ...headers, Accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
  });
  await step(async () => {
    const res = await raw(base, 'GET', `/v2/notify/app/blobs/${layer.digest}`, { headers });
    assert.equal(res.status, 200);
  });
  await step(async () => {
    const res = await raw(base, 'HEAD', `/v2/notify/app/blobs/${config.digest}`, { headers });
    assert.equal(res.status, 200);
  });
  await step(async () => {
    const res = await raw(base, 'POST', `/v2/notify/copy/blobs/uploads/?mount=${layer.digest}&from=notify/app`, { headers });
    assert.equal(res.status, 201);
  });
}

/** An event with what differs between two registries by nature taken out: ids, times, ports, instance. */
function comparable(event: any): unknown {
  const { url, ...target } = event.target;
  return {
    action: event.action,
    target: { ...target, ...(url !== undefined ? { url: new URL(url).pathname } : {}) },
    request: { method: event.request.method, useragent: event.request.useragent },
    actor: event.actor,
  };
}

describe('notifications', () => {
  test("the envelope matches Distribution's, field by field, for the same push, pulls and mount", async () => {
    const dir = tempDir();
    const forDistribution = await startReceiver();
    const forWharf = await startReceiver();
    const endpoint = (url: string) => ({ name: 'compare', url, timeout: '2s', threshold: '3', backoff: '100ms', headers: '{X-Receiver: [compare]}' });
    const reference = await startReferenceRegistry({ mode: 'plain', extraConfig: notificationsYaml([endpoint(forDistribution.url)], { includeReferences: true }) });
    const wharf = await wharfWith(dir, notificationsYaml([endpoint(forWharf.url)], { includeReferences: true }));
    try {
      await scenario(reference.url, forDistribution);
      await scenario(wharf.url, forWharf);
      const theirs = forDistribution.events();
      const ours = forWharf.events();
      assert.equal(ours.length, theirs.length, JSON.stringify(ours.map((e) => e.action)));
      assert.deepEqual(
        theirs.map((e) => e.action),
        ['push', 'push', 'push', 'pull', 'pull', 'pull', 'pull', 'mount'],
        'the reference registry sent what this test expects of it',
      );
      for (let i = 0; i < theirs.length; i += 1) assert.deepEqual(comparable(ours[i]), comparable(theirs[i]), `event ${i} (${theirs[i].action})`);
      // The references of a manifest push were really compared, not both absent.
      assert.equal(ours[2].target.references.length, 2);
      for (const [events, registry] of [
        [theirs, reference.host],
        [ours, wharf.host],
      ] as const) {
        for (const event of events) {
          assert.match(event.id, UUID);
          assert.ok(!Number.isNaN(Date.parse(event.timestamp)));
          assert.match(event.request.id, UUID);
          assert.match(event.request.addr, /^127\.0\.0\.1:\d+$/);
          assert.equal(event.request.host, registry);
          assert.equal(new URL(event.target.url).host, registry);
          assert.match(event.source.instanceID, UUID);
          assert.match(event.source.addr, /:\d+$/);
        }
      }
      assert.equal(new Set(ours.map((e) => e.id)).size, ours.length, 'every event has its own id');
      for (const receiver of [forDistribution, forWharf]) {
        for (const request of receiver.requests) {
          assert.equal(request.headers['content-type'], EVENTS_TYPE);
          assert.equal(request.headers['x-receiver'], 'compare');
        }
      }
    } finally {
      await wharf.dispose();
      await reference.stop();
      await forDistribution.close();
      await forWharf.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('events not yet delivered when the server is SIGKILLed are delivered after the restart', async () => {
    const dir = tempDir();
    const data = join(dir, 'data');
    const port = await freePort();
    // Nothing listens on the port yet: every delivery fails until the receiver starts.
    const yaml = notificationsYaml([{ name: 'later', url: `http://127.0.0.1:${port}/events`, timeout: '1s', threshold: '1', backoff: '100ms' }]);
    let wharf = await wharfWith(dir, yaml, { dataDir: data });
    let receiver: WebhookReceiver | undefined;
    try {
      const first = await pushImage(wharf.url, 'durable/app', 'one', {});
      const second = await pushImage(wharf.url, 'durable/app', 'two', {});
      await wharf.kill();
      receiver = await startReceiver({ port });
      wharf = await wharfWith(dir, yaml, { dataDir: data });
      await receiver.waitFor((r) => r.events().length >= 6);
      const events = receiver.events();
      assert.deepEqual(
        events.map((e) => [e.action, e.target.digest, e.target.tag]),
        [
          ['push', first.layer.digest, undefined],
          ['push', first.config.digest, undefined],
          ['push', first.manifest.digest, 'one'],
          ['push', second.layer.digest, undefined],
          ['push', second.config.digest, undefined],
          ['push', second.manifest.digest, 'two'],
        ],
      );
    } finally {
      await wharf.dispose();
      await receiver?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a receiver that was down gets every event, in order, once it is back', async () => {
    const dir = tempDir();
    const receiver = await startReceiver();
    receiver.answer(503);
    const wharf = await wharfWith(dir, notificationsYaml([{ name: 'flaky', url: receiver.url, timeout: '1s', threshold: '2', backoff: '150ms', maxattempts: '0' }]));
    try {
      const pushed: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        const image = await pushImage(wharf.url, 'flaky/app', `t${i}`, {});
        pushed.push(image.layer.digest, image.config.digest, image.manifest.digest);
      }
      const res = await raw(wharf.url, 'GET', '/v2/flaky/app/manifests/t4', { headers: { Accept: OCI_MANIFEST } });
      assert.equal(res.status, 200);
      pushed.push(res.header('docker-content-digest')!);
      // Down long enough for several attempts to fail (each one a request the receiver turned away).
      await waitUntil(async () => receiver.refused() >= 6, wharf);
      assert.equal(receiver.events().length, 0);
      receiver.answer(200);
      await receiver.waitFor((r) => r.events().length >= pushed.length);
      const events = receiver.events();
      assert.deepEqual(
        events.map((e) => e.target.digest),
        pushed,
      );
      assert.deepEqual(
        events.map((e) => e.action),
        [...Array(15).fill('push'), 'pull'],
      );
      assert.equal(new Set(events.map((e) => e.id)).size, events.length);
      // Every attempt the receiver turned away carried events it then got with the same ids and contents.
      const byId = new Map(events.map((e) => [e.id, e]));
      const attempted = receiver.turnedAway.flatMap((r) => r.json.events);
      assert.ok(attempted.length >= 6);
      for (const event of attempted) assert.deepEqual(byId.get(event.id), event, 'a resent event is the same event');
    } finally {
      await wharf.dispose();
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a signed endpoint gets an HMAC-SHA256 of the exact body; a CloudEvents endpoint gets structured CloudEvents 1.0', async () => {
    const dir = tempDir();
    const signed = await startReceiver();
    const cloud = await startReceiver();
    const secret = 'notify-hmac-secret-7f3a9c';
    const wharf = await wharfWith(
      dir,
      notificationsYaml([
        { name: 'signed', url: signed.url, secret, ignore: '{actions: [pull]}' },
        { name: 'cloud', url: cloud.url, format: 'cloudevents', signatureheader: 'X-Cloud-Signature', secret: 'another-secret-2b' },
      ]),
    );
    try {
      const image = await pushImage(wharf.url, 'signed/app', 'v1', {});
      await raw(wharf.url, 'GET', `/v2/signed/app/blobs/${image.layer.digest}`);
      await signed.waitFor((r) => r.events().length >= 3);
      await cloud.waitFor((r) => r.requests.flatMap((q) => (Array.isArray(q.json) ? q.json : [q.json])).length >= 4);
      for (const request of signed.requests) {
        const expected = `sha256=${createHmac('sha256', secret).update(request.body).digest('hex')}`;
        assert.equal(request.headers['wharf-signature'], expected);
        const forged = `sha256=${createHmac('sha256', 'not-the-secret').update(request.body).digest('hex')}`;
        assert.notEqual(request.headers['wharf-signature'], forged);
      }
      // ignore.actions: the blob pull went to the CloudEvents endpoint only.
      assert.deepEqual(
        signed.events().map((e) => e.action),
        ['push', 'push', 'push'],
      );
      const cloudEvents = cloud.requests.flatMap((q) => {
        assert.match(String(q.headers['content-type']), /^application\/cloudevents(-batch)?\+json$/);
        assert.equal(q.headers['x-cloud-signature'], `sha256=${createHmac('sha256', 'another-secret-2b').update(q.body).digest('hex')}`);
        return Array.isArray(q.json) ? q.json : [q.json];
      });
      assert.deepEqual(
        cloudEvents.map((e) => e.type),
        ['io.wharf.registry.push', 'io.wharf.registry.push', 'io.wharf.registry.push', 'io.wharf.registry.pull'],
      );
      for (const e of cloudEvents) {
        assert.equal(e.specversion, '1.0');
        assert.match(e.id, UUID);
        assert.equal(e.id, e.data.id);
        assert.match(e.source, /^wharf:\/\//);
        assert.equal(e.datacontenttype, 'application/json');
        assert.equal(e.time, e.data.timestamp);
      }
      assert.equal(cloudEvents[2].subject, 'signed/app:v1');
      assert.equal(cloudEvents[3].subject, `signed/app@${image.layer.digest}`);
      assert.ok(!wharf.output().includes(secret), 'the secret is never logged');
    } finally {
      await wharf.dispose();
      await signed.close();
      await cloud.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("deletes, tag moves, restores, quota refusals and collections become events, Distribution's where it has them and Wharf's own otherwise", async () => {
    const dir = tempDir();
    const receiver = await startReceiver();
    const wharf = await wharfWith(
      dir,
      `storage:
  delete:
    enabled: true
  gc:
    enabled: true
    interval: 1s
quotas:
  - repository: own/capped
    limit: 100
${notificationsYaml([{ name: 'all', url: receiver.url, backoff: '100ms' }])}`,
    );
    const json = { 'Content-Type': 'application/json' };
    try {
      const first = await pushImage(wharf.url, 'own/app', 'v1', {});
      const second = await pushImage(wharf.url, 'own/app', 'v1', {});
      const restored = await raw(wharf.url, 'POST', '/v2/own/app/_wharf/tags/v1/restore', { headers: json, body: JSON.stringify({ digest: first.manifest.digest }) });
      assert.equal(restored.status, 200, restored.body.toString());
      assert.equal((await raw(wharf.url, 'DELETE', `/v2/own/app/manifests/${first.manifest.digest}`)).status, 202);
      const third = await pushImage(wharf.url, 'own/app', 'v3', {});
      assert.equal((await raw(wharf.url, 'DELETE', '/v2/own/app/manifests/v3')).status, 202);
      assert.equal((await raw(wharf.url, 'DELETE', `/v2/own/app/blobs/${second.layer.digest}`)).status, 202);
      const big = blob('x'.repeat(200));
      const refused = await raw(wharf.url, 'POST', `/v2/own/capped/blobs/uploads/?digest=${big.digest}`, { headers: { 'Content-Type': 'application/octet-stream' }, body: big.data });
      assert.equal(refused.status, 403);
      const wanted = (r: WebhookReceiver) => r.events().filter((e) => e.action !== 'collect').length >= 16 && r.events().some((e) => e.action === 'collect');
      await receiver.waitFor(wanted);
      const events = receiver.events();
      const changes = events.filter((e) => e.action !== 'collect');
      assert.deepEqual(
        changes.map((e) => [e.action, e.target.repository, e.target.digest, e.target.tag, e.wharf]),
        [
          ['push', 'own/app', first.layer.digest, undefined, undefined],
          ['push', 'own/app', first.config.digest, undefined, undefined],
          ['push', 'own/app', first.manifest.digest, 'v1', undefined],
          ['push', 'own/app', second.layer.digest, undefined, undefined],
          ['push', 'own/app', second.config.digest, undefined, undefined],
          ['push', 'own/app', second.manifest.digest, 'v1', undefined],
          ['move', 'own/app', second.manifest.digest, 'v1', { previous: first.manifest.digest }],
          ['move', 'own/app', first.manifest.digest, 'v1', { previous: second.manifest.digest, restore: true }],
          ['delete', 'own/app', first.manifest.digest, undefined, undefined],
          ['delete', 'own/app', undefined, 'v1', undefined],
          ['push', 'own/app', third.layer.digest, undefined, undefined],
          ['push', 'own/app', third.config.digest, undefined, undefined],
          ['push', 'own/app', third.manifest.digest, 'v3', undefined],
          ['delete', 'own/app', undefined, 'v3', undefined],
          ['delete', 'own/app', second.layer.digest, undefined, undefined],
          ['refuse', 'own/capped', big.digest, undefined, { quota: 'own/capped', limit: 100, usage: 0, adds: 200 }],
        ],
      );
      assert.equal(changes.at(-1)!.target.size, 200);
      const collect = events.find((e) => e.action === 'collect');
      assert.deepEqual(Object.keys(collect.wharf).sort(), ['bytesFreed', 'deleted', 'durationMs']);
      assert.deepEqual(collect.request, {});
      assert.match(collect.id, UUID);
    } finally {
      await wharf.dispose();
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('with two worker processes, each event is delivered once', async () => {
    const dir = tempDir();
    const receiver = await startReceiver();
    const wharf = await wharfWith(dir, `server:\n  workers: 2\n${notificationsYaml([{ name: 'once', url: receiver.url, backoff: '100ms' }])}`);
    try {
      const images = await Promise.all(Array.from({ length: 8 }, (_, i) => pushImage(wharf.url, `workers/app${i % 3}`, `t${i}`, {})));
      await Promise.all(
        images.map(async (image, i) => {
          const res = await raw(wharf.url, 'GET', `/v2/workers/app${i % 3}/manifests/t${i}`, { headers: { Accept: OCI_MANIFEST } });
          assert.equal(res.status, 200);
        }),
      );
      const expected = images.length * 4;
      await receiver.waitFor((r) => r.events().length >= expected);
      // Time for a second process to deliver anything twice, had it been able to.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const events = receiver.events();
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event id came twice');
      assert.equal(events.length, expected);
      const instances = new Set(events.map((e) => e.source.instanceID));
      assert.equal(instances.size, 1, 'one process delivered them all');
    } finally {
      await wharf.dispose();
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('parked events and wharf admin events', () => {
    const ROOT_PW = 'notify-root-password-1';
    let dir: string;
    let receiver: WebhookReceiver;
    let wharf: WharfProcess;

    before(async () => {
      dir = tempDir();
      receiver = await startReceiver();
      receiver.answer(500);
      writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW });
      wharf = await wharfWith(
        dir,
        `auth:
  htpasswd:
    realm: notify
    path: ${join(dir, 'htpasswd')}
  policy:
    admins: [root]
${notificationsYaml([{ name: 'picky', url: receiver.url, threshold: '1', backoff: '50ms', maxattempts: '2', secret: 'parked-secret-91' }])}`,
      );
    });

    after(async () => {
      await wharf?.dispose();
      await receiver?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test('an event that keeps failing is parked, listed, and delivered with its id by a replay', async () => {
      const auth = { Authorization: basic('root', ROOT_PW) };
      const image = await pushImage(wharf.url, 'parked/app', 'v1', auth);
      const admin = async () => (await raw(wharf.url, 'GET', '/admin/v1/events', { headers: auth })).json();
      await waitUntil(async () => (await admin()).parked.length === 3, wharf);
      const report = await admin();
      assert.equal(report.endpoints.length, 1);
      assert.equal(report.endpoints[0].name, 'picky');
      assert.equal(report.endpoints[0].parked, 3);
      assert.equal(report.endpoints[0].pending, 0);
      assert.deepEqual(
        report.parked.map((p: any) => [p.events[0].action, p.events[0].target.digest, p.attempts, p.lastError]),
        [
          ['push', image.layer.digest, 2, 'endpoint answered 500'],
          ['push', image.config.digest, 2, 'endpoint answered 500'],
          ['push', image.manifest.digest, 2, 'endpoint answered 500'],
        ],
      );
      const user = cliUser({ WHARF_REGISTRY: wharf.url, WHARF_USERNAME: 'root', WHARF_PASSWORD: ROOT_PW });
      try {
        const listed = await user.ok(['admin', 'events']);
        assert.match(listed.stdout, /picky\s+ok\s+0\s+0\s+3/);
        assert.ok(listed.stdout.includes(`parked/app:v1`), listed.stdout);
        assert.ok(!listed.stdout.includes('parked-secret-91'));
        const unknown = await user.run(['admin', 'events', 'replay', 'nobody']);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /no notification endpoint is named "nobody"/);
        receiver.answer(200);
        // The first one alone, then the rest.
        const firstId = report.parked[0].id;
        assert.match((await user.ok(['admin', 'events', 'replay', 'picky', String(firstId)])).stdout, /^1 parked event of picky put back in line/);
        await receiver.waitFor((r) => r.events().length >= 1);
        assert.match((await user.ok(['admin', 'events', 'replay', 'picky'])).stdout, /^2 parked events of picky put back in line/);
        await receiver.waitFor((r) => r.events().length >= 3);
      } finally {
        user.dispose();
      }
      assert.deepEqual(
        receiver.events().map((e) => e.id),
        report.parked.map((p: any) => p.events[0].id),
        'replayed events keep the ids they were parked with',
      );
      assert.equal((await admin()).parked.length, 0);
    });

    test('the admin API answers bad requests with OCI errors', async () => {
      const auth = { Authorization: basic('root', ROOT_PW) };
      const unknown = await raw(wharf.url, 'GET', '/admin/v1/events/nobody', { headers: auth });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json().errors[0].code, 'NOT_FOUND');
      const bad = await raw(wharf.url, 'POST', '/admin/v1/events/picky/replay', { headers: { ...auth, 'Content-Type': 'application/json' }, body: '{"ids": ["x"]}' });
      assert.equal(bad.status, 400);
      assert.equal(bad.json().errors[0].code, 'INVALID_REQUEST');
      const anonymous = await raw(wharf.url, 'GET', '/admin/v1/events');
      assert.equal(anonymous.status, 401);
    });
  });
});

/** Polls `check` until it holds, failing after 20 s with the server's output. */
async function waitUntil(check: () => Promise<boolean>, wharf: WharfProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not reached; server output:\n${wharf.output().slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
