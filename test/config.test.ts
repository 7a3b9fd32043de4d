import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, ConfigError } from '../src/config/config.js';
import { parseDuration } from '../src/config/duration.js';
import { raw } from './support/http.js';
import { WHARF_BIN, startWharf } from './support/wharf-process.js';

const dir = mkdtempSync(join(tmpdir(), 'wharf-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('loading registry:2 configuration', () => {
  it('has the embedded defaults: :5000, ./data, delete off, access log on', () => {
    const { config, warnings } = loadConfig({ env: {} });
    assert.equal(config.http.port, 5000);
    assert.equal(config.http.host, undefined);
    assert.equal(config.storage.rootDirectory, join(process.cwd(), 'data'));
    assert.equal(config.storage.deleteEnabled, false);
    assert.equal(config.log.accessLog, true);
    assert.equal(config.metadata.sqlite.path, join(process.cwd(), 'data', 'wharf.db'));
    assert.deepEqual(warnings, []);
  });

  it("reads registry:2's notifications section, with Wharf's own endpoint keys, without a warning", () => {
    const path = file(
      'notifications.yml',
      `notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer xyz]
      timeout: 500ms
      threshold: 5
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
          - application/vnd.oci.image.index.v1+json
        actions:
          - pull
    - name: signed
      url: http://127.0.0.1:9000/hook
      format: cloudevents
      secret: s3cret
      signatureheader: X-Signature
      maxattempts: 7
`,
    );
    const { config, warnings } = loadConfig({ file: path, env: {} });
    assert.deepEqual(warnings, []);
    assert.equal(config.notifications.includeReferences, true);
    assert.deepEqual(config.notifications.endpoints[0], {
      name: 'alistener',
      url: 'https://my.listener.com/event',
      headers: { Authorization: ['Bearer xyz'] },
      timeoutMs: 500,
      threshold: 5,
      backoffMs: 1000,
      disabled: false,
      ignoredMediaTypes: ['application/octet-stream', 'application/vnd.oci.image.index.v1+json'],
      ignoredActions: ['pull'],
      maxAttempts: 100,
      format: 'distribution',
      signatureHeader: 'Wharf-Signature',
    });
    const signed = config.notifications.endpoints[1]!;
    assert.deepEqual([signed.format, signed.secret, signed.signatureHeader, signed.maxAttempts, signed.timeoutMs, signed.threshold], ['cloudevents', 's3cret', 'X-Signature', 7, 1000, 10]);
    assert.deepEqual(loadConfig({ env: {} }).config.notifications, { endpoints: [], includeReferences: false });
  });

  it('refuses notification endpoints it cannot use, naming the key', () => {
    const bad = (endpoint: string) => () => loadConfig({ file: file('bad-endpoint.yml', `notifications:\n  endpoints:\n    - ${endpoint}\n`), env: {} });
    assert.throws(bad('name: a'), /notifications\.endpoints\[0\]\.url: an http/);
    assert.throws(bad('url: http://x/'), /notifications\.endpoints\[0\]\.name/);
    assert.throws(bad('{name: a, url: ftp://x/}'), /\.url: an http/);
    assert.throws(bad('{name: a, url: http://x/, timeout: soon}'), /\.timeout: "soon" is not a duration/);
    assert.throws(bad('{name: a, url: http://x/, threshold: -1}'), /\.threshold/);
    assert.throws(bad('{name: a, url: http://x/, format: xml}'), /\.format/);
    assert.throws(bad('{name: a, url: http://x/, colour: red}'), /unknown key "colour"/);
    assert.throws(bad('{name: a, url: http://x/, ignore: {verbs: [pull]}}'), /ignore: unknown key "verbs"/);
    assert.throws(() => loadConfig({ file: file('twice.yml', 'notifications:\n  endpoints:\n    - {name: a, url: http://x/}\n    - {name: a, url: http://y/}\n'), env: {} }), /"a" names another endpoint/);
    assert.throws(() => loadConfig({ file: file('notalist.yml', 'notifications:\n  endpoints: {name: a}\n'), env: {} }), ConfigError);
  });

  it('reads the keys it shares with registry:2 from a config file', () => {
    const path = file(
      'full.yml',
      `version: 0.1
log:
  level: debug
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 48h
      interval: 1h30m
      dryrun: false
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:5123
  headers:
    X-Content-Type-Options: [nosniff]
catalog:
  maxentries: 250
`,
    );
    const { config, warnings } = loadConfig({ file: path, env: {} });
    assert.equal(config.log.level, 'debug');
    assert.equal(config.log.format, 'json');
    assert.equal(config.log.accessLog, false);
    assert.equal(config.storage.rootDirectory, '/var/lib/registry');
    assert.equal(config.storage.deleteEnabled, true);
    assert.equal(config.storage.uploadPurging.ageMs, 48 * 3_600_000);
    assert.equal(config.storage.uploadPurging.intervalMs, 90 * 60_000);
    assert.equal(config.http.host, '127.0.0.1');
    assert.equal(config.http.port, 5123);
    assert.deepEqual(config.http.headers, { 'X-Content-Type-Options': ['nosniff'] });
    assert.equal(config.catalog.maxEntries, 250);
    assert.equal(warnings.length, 1, 'storage.cache is registry:2-only and noted');
    assert.match(warnings[0]!, /storage\.cache/);
  });

  it('lets REGISTRY_* environment variables override the file, and flags override both', () => {
    const path = file('base.yml', 'http:\n  addr: 127.0.0.1:1111\nstorage:\n  delete:\n    enabled: false\n');
    const env = {
      REGISTRY_HTTP_ADDR: '0.0.0.0:2222',
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry',
      REGISTRY_LOG_LEVEL: 'warn',
      REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    };
    const fromEnv = loadConfig({ file: path, env }).config;
    assert.equal(fromEnv.http.port, 2222);
    assert.equal(fromEnv.storage.deleteEnabled, true);
    assert.equal(fromEnv.storage.rootDirectory, '/srv/registry');
    assert.equal(fromEnv.log.level, 'warn');
    assert.equal(fromEnv.log.accessLog, false);
    const fromFlags = loadConfig({ file: path, env, flags: { addr: '[::1]:3333', data: '/tmp/flagdata' } }).config;
    assert.equal(fromFlags.http.host, '::1');
    assert.equal(fromFlags.http.port, 3333);
    assert.equal(fromFlags.storage.rootDirectory, '/tmp/flagdata');
  });

  it('selects the storage driver with REGISTRY_STORAGE=filesystem, and refuses one it lacks', () => {
    assert.equal(loadConfig({ env: { REGISTRY_STORAGE: 'filesystem' } }).config.storage.rootDirectory, join(process.cwd(), 'data'));
    assert.throws(() => loadConfig({ env: { REGISTRY_STORAGE: 'azure' } }), ConfigError);
  });

  it('reads registry:2 storage.s3 keys from the file and REGISTRY_STORAGE_S3_* variables, with registry:2 defaults', () => {
    const yaml = [
      'storage:',
      '  s3:',
      '    bucket: images',
      '    regionendpoint: http://127.0.0.1:7480',
      '    forcepathstyle: true',
      '    accesskey: AKID',
      '    secretkey: SECRET',
      '    rootdirectory: /registry',
      '    chunksize: 20971520',
      '    storageclass: NONE',
      '    v4auth: true',
      '  redirect:',
      '    disable: true',
      '',
    ].join('\n');
    const { config, warnings } = loadConfig({ file: file('s3.yml', yaml), env: {} });
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.storage.redirectDisabled, true);
    assert.deepEqual(config.storage.s3, {
      bucket: 'images',
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:7480',
      forcePathStyle: true,
      accessKey: 'AKID',
      secretKey: 'SECRET',
      rootDirectory: '/registry',
      encrypt: false,
      secure: true,
      skipVerify: false,
      chunkSize: 20 * 1024 * 1024,
      copyPartBytes: 32 * 1024 * 1024,
      copyConcurrency: 16,
    });
    assert.ok(warnings.some((w) => w.includes('storage.s3.v4auth')), warnings.join('; '));
    const fromEnv = loadConfig({
      env: { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'eu-west-1', REGISTRY_STORAGE_S3_ENCRYPT: 'true', REGISTRY_STORAGE_S3_SECURE: 'false' },
    }).config;
    assert.equal(fromEnv.storage.driver, 's3');
    assert.equal(fromEnv.storage.redirectDisabled, false, 'registry:2 redirects by default');
    assert.equal(fromEnv.storage.s3?.region, 'eu-west-1');
    assert.equal(fromEnv.storage.s3?.encrypt, true);
    assert.equal(fromEnv.storage.s3?.secure, false);
    assert.equal(fromEnv.storage.s3?.storageClass, 'STANDARD');
    assert.equal(fromEnv.storage.s3?.accessKey, undefined, 'no keys: the AWS default credential chain');
    assert.equal(loadConfig({ env: {} }).config.storage.driver, 'filesystem');
    const refused: Array<[NodeJS.ProcessEnv, RegExp]> = [
      [{ REGISTRY_STORAGE_S3_REGION: 'eu-west-1' }, /storage\.s3\.bucket is required/],
      [{ REGISTRY_STORAGE_S3_BUCKET: 'b' }, /storage\.s3\.region is required/],
      [{ REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'x', REGISTRY_STORAGE_S3_ACCESSKEY: 'a' }, /go together/],
      [{ REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'x', REGISTRY_STORAGE_S3_CHUNKSIZE: '1048576' }, /storage\.s3\.chunksize/],
    ];
    for (const [env, message] of refused) assert.throws(() => loadConfig({ env }), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(env));
  });

  it('warns about unknown keys and unknown REGISTRY_ variables', () => {
    const path = file('unknown.yml', 'storage:\n  delete:\n    enabled: true\nfrobnicate: 1\n');
    const { warnings } = loadConfig({ file: path, env: { REGISTRY_NO_SUCH_THING: 'x', REGISTRY_STORAGE_DELETE_ENABELD: 'true' } });
    assert.deepEqual(
      warnings.sort(),
      [
        'unknown configuration key "frobnicate" ignored',
        'unknown environment variable REGISTRY_NO_SUCH_THING ignored',
        'unknown environment variable REGISTRY_STORAGE_DELETE_ENABELD ignored (did you mean REGISTRY_STORAGE_DELETE_ENABLED?)',
      ].sort(),
    );
  });

  it('refuses a misspelt key of the file, naming the key it resembles', () => {
    const cases: Array<[string, string]> = [
      ['storage:\n  filesytem:\n    rootdirectory: /srv/registry\n', 'unknown configuration key "storage.filesytem": did you mean storage.filesystem?'],
      ['storage:\n  delete:\n    enabeld: true\n', 'unknown configuration key "storage.delete.enabeld": did you mean storage.delete.enabled?'],
      ['htpp:\n  addr: :5000\n', 'unknown configuration key "htpp": did you mean http?'],
      ['auth:\n  htpasswd:\n    paht: /etc/htpasswd\n', 'unknown configuration key "auth.htpasswd.paht": did you mean auth.htpasswd.path?'],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => loadConfig({ file: file('typo.yml', text), env: {} }), (e: unknown) => e instanceof ConfigError && e.message === message, text);
    }
  });

  it('stops on registry:2 sections that change behaviour and that Wharf does not implement yet, naming the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['proxy:\n  remoteurl: https://registry-1.docker.io\n', /^proxy: not supported yet \(the pull-through cache/],
      ['storage:\n  s3-aws:\n    bucket: images\n', /^storage\.s3-aws: not supported yet/],
      ['storage:\n  gcs:\n    bucket: images\n', /^storage\.gcs: not supported yet/],
      ['storage:\n  azure:\n    accountname: a\n', /^storage\.azure: not supported yet/],
      ['storage:\n  swift:\n    container: c\n', /^storage\.swift: not supported yet/],
      ['storage:\n  oss:\n    bucket: b\n', /^storage\.oss: not supported yet/],
      ['storage:\n  inmemory:\n', /^storage\.inmemory: not supported yet/],
      ['storage: gcs\n', /^storage: gcs: not supported yet/],
      ['middleware:\n  storage:\n    - name: cloudfront\n', /^middleware: not supported yet/],
      ['auth:\n  silly:\n    realm: x\n    service: y\n', /^auth\.silly: not supported yet .*open to everyone/],
      ['http:\n  prefix: /registry/\n', /^http\.prefix: not supported yet/],
      ['http:\n  tls:\n    letsencrypt:\n      email: a@example.com\n', /^http\.tls\.letsencrypt: not supported yet/],
      ['log:\n  hooks:\n    - type: mail\n', /^log\.hooks: not supported yet/],
      ['reporting:\n  bugsnag:\n    apikey: k\n', /^reporting: not supported yet/],
      ['health:\n  http:\n    - uri: http://example.com/\n', /^health\.http: not supported yet/],
      ['compatibility:\n  schema1:\n    enabled: true\n', /^compatibility\.schema1\.enabled: not supported yet/],
      ['validation:\n  manifests:\n    urls:\n      allow: [^https://]\n', /^validation\.manifests: not supported yet/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => loadConfig({ file: file('unsupported.yml', text), env: {} }), (e: unknown) => e instanceof ConfigError && message.test(e.message), text);
    }
    const fromEnv: Array<[NodeJS.ProcessEnv, RegExp]> = [
      [{ REGISTRY_PROXY_REMOTEURL: 'https://registry-1.docker.io' }, /^REGISTRY_PROXY_REMOTEURL: not supported yet \(the pull-through cache/],
      [{ REGISTRY_STORAGE: 'gcs' }, /^REGISTRY_STORAGE=gcs: not supported yet/],
      [{ REGISTRY_STORAGE_GCS_BUCKET: 'images' }, /^REGISTRY_STORAGE_GCS_BUCKET: not supported yet/],
      [{ REGISTRY_AUTH: 'silly' }, /^REGISTRY_AUTH=silly: not supported yet/],
    ];
    for (const [env, message] of fromEnv) {
      assert.throws(() => loadConfig({ env }), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(env));
    }
  });

  it('wharf serve with proxy.remoteurl stops with one line naming the key, not an empty writable registry', () => {
    const path = file('proxy.yml', 'version: 0.1\nproxy:\n  remoteurl: https://registry-1.docker.io\nhttp:\n  addr: 127.0.0.1:0\n');
    const result = spawnSync(process.execPath, [WHARF_BIN, 'serve', path, '--data', join(dir, 'proxy-data')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^wharf: invalid configuration: proxy: not supported yet/);
  });

  it('keeps truly irrelevant registry:2 keys as warnings, none pointing at a feature that does not exist', () => {
    const path = file(
      'irrelevant.yml',
      [
        'version: 0.1',
        'log:',
        '  fields:',
        '    service: registry',
        'storage:',
        '  cache:',
        '    blobdescriptor: redis',
        '  filesystem:',
        '    rootdirectory: /var/lib/registry',
        'http:',
        '  secret: asecretforlocaldevelopment',
        'redis:',
        '  addr: localhost:6379',
        'health:',
        '  storagedriver:',
        '    enabled: true',
        '    interval: 10s',
        '    threshold: 3',
        'compatibility:',
        '  schema1:',
        '    enabled: false',
        '',
      ].join('\n'),
    );
    const { warnings } = loadConfig({ file: path, env: {} });
    // health.storagedriver is served (/debug/health on http.debug.addr): no warning for it.
    assert.equal(warnings.length, 5, warnings.join('\n'));
    for (const warning of warnings) assert.doesNotMatch(warning, /metrics|webhook/i);
  });

  it('reads storage.gc (Wharf\'s own keys): off by default, a one-hour delay', () => {
    const defaults = loadConfig({ env: {} }).config.storage.gc;
    assert.deepEqual(defaults, { enabled: false, intervalMs: 24 * 3_600_000, delayMs: 3_600_000, deleteUntagged: false });
    const path = file('gc.yml', 'storage:\n  gc:\n    enabled: true\n    interval: 6h\n    delay: 90s\n    deleteuntagged: true\n');
    const { config, warnings } = loadConfig({ file: path, env: { REGISTRY_STORAGE_GC_DELAY: '0s' } });
    assert.deepEqual(config.storage.gc, { enabled: true, intervalMs: 6 * 3_600_000, delayMs: 0, deleteUntagged: true });
    assert.deepEqual(warnings, []);
    assert.throws(() => loadConfig({ env: { REGISTRY_STORAGE_GC_INTERVAL: 'often' } }), /storage\.gc\.interval/);
  });

  it('reads history.retention (14 days by default, 0 turns it off) and immutable.rules (REPO:TAG)', () => {
    const defaults = loadConfig({ env: {} }).config;
    assert.deepEqual(defaults.history, { retentionMs: 14 * 24 * 3_600_000 });
    assert.deepEqual(defaults.immutable, { rules: [] });
    const path = file('lifecycle.yml', 'history:\n  retention: 0s\nimmutable:\n  rules: ["release/*:v*", "base/**:stable"]\n');
    const { config, warnings } = loadConfig({ file: path, env: {} });
    assert.deepEqual(config.history, { retentionMs: 0 });
    assert.deepEqual(config.immutable.rules, ['release/*:v*', 'base/**:stable']);
    assert.deepEqual(warnings, []);
    assert.deepEqual(loadConfig({ env: { REGISTRY_IMMUTABLE_RULES: 'a/*:v*,b:c' } }).config.immutable.rules, ['a/*:v*', 'b:c']);
    assert.throws(() => loadConfig({ env: { REGISTRY_IMMUTABLE_RULES: 'no-tag-pattern' } }), /immutable\.rules/);
    assert.throws(() => loadConfig({ env: { REGISTRY_HISTORY_RETENTION: 'forever' } }), /history\.retention/);
  });

  it('refuses invalid values with a message naming the key', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ REGISTRY_HTTP_ADDR: 'not-an-address' }, /http\.addr/],
      [{ REGISTRY_HTTP_ADDR: ':99999' }, /http\.addr/],
      [{ REGISTRY_LOG_LEVEL: 'loud' }, /log\.level/],
      [{ REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' }, /storage\.delete\.enabled/],
      [{ REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: 'soon' }, /uploadpurging\.age/],
      [{ REGISTRY_CATALOG_MAXENTRIES: '0' }, /catalog\.maxentries/],
    ];
    for (const [env, message] of cases) assert.throws(() => loadConfig({ env }), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(env));
    assert.throws(() => loadConfig({ file: file('bad.yml', 'http: [1, 2'), env: {} }), /not valid YAML/);
    assert.throws(() => loadConfig({ file: file('ver.yml', 'version: 9'), env: {} }), /version/);
    assert.throws(() => loadConfig({ file: join(dir, 'missing.yml'), env: {} }), /cannot read/);
  });

  it('treats an empty section as present (registry:2 writes `storage:\n  filesystem:`)', () => {
    const path = file('empty-section.yml', 'storage:\n  filesystem:\n  delete:\n    enabled: true\n');
    const { config, warnings } = loadConfig({ file: path, env: {} });
    assert.equal(config.storage.deleteEnabled, true);
    assert.deepEqual(warnings, []);
    const auth = loadConfig({ file: file('empty-auth.yml', 'auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: example\n    jwks: /nonexistent/jwks.json\n'), env: {} });
    assert.ok(auth.config.auth, 'auth section kept');
  });

  it('parses Go durations', () => {
    assert.equal(parseDuration('168h'), 168 * 3_600_000);
    assert.equal(parseDuration('1h30m10s'), 5_410_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30'), 30_000);
    assert.equal(parseDuration('1d'), undefined);
    assert.equal(parseDuration(''), undefined);
  });
});

describe('wharf serve with configuration', () => {
  it('serves from a registry:2 config file: address, storage, delete, quiet access log, unknown-key warning', async () => {
    const data = join(dir, 'served');
    const path = file('serve.yml', `version: 0.1\nlog:\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${data}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  headers:\n    X-Served-By: [wharf]\nnotarealkey: true\n`);
    const wharf = await startWharf({ args: [path], noFlags: true });
    try {
      const res = await raw(wharf.url, 'GET', '/v2/');
      assert.equal(res.status, 200);
      assert.equal(res.header('x-served-by'), 'wharf');
      assert.equal((await raw(wharf.url, 'DELETE', '/v2/x/blobs/sha256:' + 'a'.repeat(64))).status, 404, 'delete enabled: unknown blob, not 405');
      assert.match(wharf.output(), /unknown configuration key \\"notarealkey\\" ignored/);
      assert.match(wharf.output(), new RegExp(`"storage":"${data}"`));
      assert.doesNotMatch(wharf.output(), /"msg":"request"/, 'access log disabled');
    } finally {
      await wharf.stop();
    }
  });

  it('reads the file named by REGISTRY_CONFIGURATION_PATH when no path is given', async () => {
    const path = file('by-env.yml', 'http:\n  addr: 127.0.0.1:0\n  headers:\n    X-From: [env-path]\n');
    const wharf = await startWharf({ noFlags: true, args: ['--data', join(dir, 'by-env-data')], env: { REGISTRY_CONFIGURATION_PATH: path } });
    try {
      assert.equal((await raw(wharf.url, 'GET', '/v2/')).header('x-from'), 'env-path');
      assert.doesNotMatch(wharf.output(), /REGISTRY_CONFIGURATION_PATH ignored/);
    } finally {
      await wharf.stop();
    }
  });

  it('writes one JSON access-log line per request by default', async () => {
    const wharf = await startWharf();
    try {
      await raw(wharf.url, 'GET', '/v2/');
      await raw(wharf.url, 'GET', '/v2/nothing/tags/list');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const lines = wharf.output().split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l));
      assert.equal(lines.length, 2);
      assert.deepEqual(lines.map((l) => [l.method, l.path, l.status]), [['GET', '/v2/', 200], ['GET', '/v2/nothing/tags/list', 404]]);
      assert.ok(lines.every((l) => typeof l.durationMs === 'number' && l.remote === '127.0.0.1'));
    } finally {
      await wharf.dispose();
    }
  });

  it('exits with an error and opens no socket when a value is invalid', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    const result = spawnSync(process.execPath, [WHARF_BIN, 'serve'], {
      env: { ...process.env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_LOG_LEVEL: 'shouting', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, 'never') },
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /invalid configuration: log\.level/);
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    assert.equal(connected, false);
  });

  it('exits non-zero when the address is taken', async () => {
    const blocker = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = spawnSync(process.execPath, [WHARF_BIN, 'serve', '--addr', `127.0.0.1:${port}`, '--data', join(dir, 'taken')], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(result.status, 1);
      assert.match(result.stdout + result.stderr, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    } finally {
      blocker.close();
    }
  });
});


describe('operations settings: debug server, health, free space, rate limits', () => {
  it('reads http.debug and health as registry:2 names them, from the file and the environment, without a warning', () => {
    const path = file('debug.yml', 'http:\n  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\nhealth:\n  storagedriver:\n    interval: 5s\n    threshold: 2\n');
    const { config, warnings } = loadConfig({ file: path, env: {} });
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.http.debug, { host: '127.0.0.1', port: 5001, prometheus: { enabled: true, path: '/metrics' } });
    assert.deepEqual(config.health.storageDriver, { enabled: true, intervalMs: 5000, threshold: 2 });
    const fromEnv = loadConfig({ env: { REGISTRY_HTTP_DEBUG_ADDR: ':5002', REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'true', REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH: '/m' } });
    assert.deepEqual(fromEnv.warnings, []);
    assert.deepEqual(fromEnv.config.http.debug, { host: undefined, port: 5002, prometheus: { enabled: true, path: '/m' } });
    assert.equal(loadConfig({ env: {} }).config.http.debug, undefined);
    assert.throws(() => loadConfig({ env: { REGISTRY_HTTP_DEBUG_ADDR: 'nope' } }), /http\.debug\.addr: "nope" is not host:port/);
    assert.throws(() => loadConfig({ env: { REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'true' } }), /needs http\.debug\.addr/);
  });

  it('reads storage.freespace as a size, 0 turning it off, and refuses what is not a size', () => {
    assert.equal(loadConfig({ env: {} }).config.storage.freeSpace.minimumBytes, 128 * 2 ** 20);
    assert.equal(loadConfig({ env: { REGISTRY_STORAGE_FREESPACE_MINIMUM: '2GiB' } }).config.storage.freeSpace.minimumBytes, 2 * 2 ** 30);
    assert.equal(loadConfig({ env: { REGISTRY_STORAGE_FREESPACE_MINIMUM: '0' } }).config.storage.freeSpace.minimumBytes, 0);
    assert.throws(() => loadConfig({ env: { REGISTRY_STORAGE_FREESPACE_MINIMUM: 'lots' } }), ConfigError);
  });

  it('reads ratelimit with per-user overrides, and names the key of a bad one', () => {
    const path = file(
      'ratelimit.yml',
      'ratelimit:\n  enabled: true\n  pulls: {rate: 10, burst: 50}\n  auth: {rate: 1}\n  overrides:\n    - {user: ci, pulls: {rate: 100, burst: 500}}\n',
    );
    const { config, warnings } = loadConfig({ file: path, env: {} });
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.rateLimit, { limits: { pulls: { rate: 10, burst: 50 }, auth: { rate: 1, burst: 1 } }, overrides: { ci: { pulls: { rate: 100, burst: 500 } } } });
    assert.equal(loadConfig({ env: {} }).config.rateLimit, undefined);
    const bad = file('ratelimit-bad.yml', 'ratelimit:\n  enabled: true\n  overrides:\n    - {user: ci, pull: {rate: 1}}\n');
    assert.throws(() => loadConfig({ file: bad, env: {} }), /ratelimit\.overrides\[0\]: unknown key "pull"/);
    assert.throws(() => loadConfig({ env: { REGISTRY_RATELIMIT_ENABLED: 'true', REGISTRY_RATELIMIT_PULLS_RATE: '0' } }), /ratelimit\.pulls\.rate/);
  });
});

describe('database: PostgreSQL metadata as GitLab registry configures it', () => {
  it('reads database.* from the file and REGISTRY_DATABASE_* from the environment; metadata stays SQLite unless enabled', () => {
    assert.equal(loadConfig({ env: {} }).config.metadata.kind, 'sqlite');
    const path = file(
      'database.yml',
      `database:
  enabled: true
  host: db.internal
  port: 5433
  user: registry
  password: from-the-file
  dbname: registry
  sslmode: verify-full
  pool:
    maxopen: 20
    maxidle: 5
    maxlifetime: 5m
    maxidletime: 1m
`,
    );
    const { config, warnings } = loadConfig({ file: path, env: { REGISTRY_DATABASE_PASSWORD: 'from-env', REGISTRY_DATABASE_POOL_MAXIDLE: '3' } });
    assert.deepEqual(warnings, []);
    assert.equal(config.metadata.kind, 'postgres');
    assert.deepEqual(config.metadata.postgres, {
      host: 'db.internal',
      port: 5433,
      user: 'registry',
      password: 'from-env',
      dbname: 'registry',
      sslmode: 'verify-full',
      connectTimeoutMs: 10_000,
      pool: { maxOpen: 20, maxIdle: 3, maxLifetimeMs: 300_000, maxIdleTimeMs: 60_000 },
    });
    const fromEnv = loadConfig({ env: { REGISTRY_DATABASE_ENABLED: 'true', REGISTRY_DATABASE_HOST: '127.0.0.1', REGISTRY_DATABASE_DBNAME: 'r' } }).config;
    assert.deepEqual([fromEnv.metadata.kind, fromEnv.metadata.postgres?.port, fromEnv.metadata.postgres?.sslmode], ['postgres', 5432, 'prefer']);
    assert.throws(() => loadConfig({ env: { REGISTRY_DATABASE_ENABLED: 'true', REGISTRY_DATABASE_DBNAME: 'r' } }), /database\.host is required/);
    assert.throws(() => loadConfig({ env: { REGISTRY_DATABASE_ENABLED: 'true', REGISTRY_DATABASE_HOST: 'h', REGISTRY_DATABASE_DBNAME: 'r', REGISTRY_DATABASE_SSLMODE: 'maybe' } }), /database\.sslmode/);
  });
});
