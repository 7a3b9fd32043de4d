import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Auth } from '../auth/setup.js';
import { RegistryError } from '../errors/index.js';
import type { RegistryServices } from '../registry/services.js';
import { checkRouteName, guard } from './access-gate.js';
import { sendError } from './error-response.js';
import type { Exchange, Handler } from './exchange.js';
import { deleteBlob, getBlob } from './handlers/blobs.js';
import * as admin from './handlers/admin.js';
import { base, catalog, listReferrers, listTags } from './handlers/discovery.js';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js';
import { healthz, readyz, type HealthProbes } from './handlers/health.js';
import { exchangeToken, issueToken } from './handlers/token.js';
import { cancelUpload, getUploadStatus, patchUpload, putUpload, startUpload } from './handlers/uploads.js';
import { getTagHistory, restoreTag } from './handlers/tags.js';
import { getRepositoryProfile, pingV1, putReadme, putStar, search } from './handlers/search.js';
import { matchRoute, type Route } from './router.js';
import type { ScanAdmin } from '../scan/scan-service.js';

export interface AppOptions {
  log: Logger;
  accessLog: boolean;
  /** registry:2's http.headers: added to every response. */
  extraHeaders?: Record<string, string[]>;
  /**
   * Every write is refused: `true` for registry:2's maintenance.readonly (405 UNSUPPORTED),
   * `storage-full` when the registry started on a full disk (507 STORAGE_FULL).
   */
  readOnly?: boolean | 'storage-full';
  /**
   * Asked before every registry write: a sentence while pushes must wait for free space (507
   * STORAGE_FULL with that message), undefined while there is room.
   */
  storageRoom?: () => Promise<string | undefined>;
  /** The readiness checks behind /readyz; without them it reports ready. */
  health?: HealthProbes;
  /** Access control; absent when the registry is open to everyone. */
  auth?: Auth;
  /**
   * Run around every routed request, in order, before the built-in ones (see Middleware), so
   * that they see every answer, refusals included.
   */
  middleware?: Middleware[];
  /**
   * Told of every routed request first, synchronously (metrics): cheaper than a middleware for
   * what only watches; it sees the answer through the response's events.
   */
  observers?: Array<(exchange: Exchange) => void>;
  /**
   * Run after the access gate, before the handler, in order: checks that need to know who is
   * asking (`exchange.context.actor`), such as limits per user. Each throws to refuse.
   */
  admitted?: Admission[];
  /** Image scanning (SBOMs, vulnerability reports) for the admin API; absent when scanning is off. */
  scans?: ScanAdmin;
}

const WRITE_METHODS = new Set(['PUT', 'POST', 'PATCH', 'DELETE']);

type MethodTable = Partial<Record<string, Handler<never>>>;

/**
 * Every endpoint the server answers, one row each: method to handler. HEAD shares GET's handler,
 * which skips the body. Access to each is decided in one place, the gate (access-gate.ts).
 */
const ROUTES: Record<Route['kind'], MethodTable> = {
  base: { GET: base, HEAD: base },
  catalog: { GET: catalog },
  tags: { GET: listTags },
  manifest: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  blob: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  uploads: { POST: startUpload },
  upload: { GET: getUploadStatus, PATCH: patchUpload, PUT: putUpload, DELETE: cancelUpload },
  referrers: { GET: listReferrers },
  'tag.history': { GET: getTagHistory },
  'tag.restore': { POST: restoreTag },
  'repository.profile': { GET: getRepositoryProfile },
  'repository.readme': { PUT: putReadme, DELETE: putReadme },
  'repository.star': { PUT: putStar, DELETE: putStar },
  search: { GET: search },
  'ping.v1': { GET: pingV1, HEAD: pingV1 },
  token: { GET: issueToken, POST: exchangeToken },
  'admin.users': { GET: admin.listUsers, POST: admin.addUser },
  'admin.user': { DELETE: admin.removeUser },
  'admin.user.password': { PUT: admin.changePassword },
  'admin.user.groups': { PUT: admin.setGroups },
  'admin.robots': { GET: admin.listRobots, POST: admin.createRobot },
  'admin.robot': { DELETE: admin.revokeRobot },
  'admin.policy': { GET: admin.listPolicy },
  'admin.policy.rules': { POST: admin.addRule },
  'admin.policy.rule': { DELETE: admin.removeRule },
  'admin.immutable': { GET: admin.listImmutableRules, POST: admin.addImmutableRule },
  'admin.immutable.rule': { DELETE: admin.removeImmutableRule },
  'admin.jobs': { GET: admin.listJobs },
  'admin.quotas': { GET: admin.listQuotas },
  'admin.quota': { PUT: admin.setQuota, DELETE: admin.removeQuota },
  'admin.usage': { GET: admin.listUsage },
  'admin.retention': { GET: admin.listRetentionPolicies, POST: admin.addRetentionPolicy },
  'admin.retention.policy': { DELETE: admin.removeRetentionPolicy },
  'admin.retention.run': { POST: admin.runRetention },
  'admin.history': { GET: admin.tagHistory },
  'admin.history.restore': { POST: admin.restoreTag },
  healthz: { GET: healthz, HEAD: healthz },
  readyz: { GET: readyz, HEAD: readyz },
  'admin.events': { GET: admin.listEvents },
  'admin.events.endpoint': { GET: admin.listEvents },
  'admin.events.replay': { POST: admin.replayEvents },
  'admin.scans': { GET: admin.listScans, POST: admin.scanNow },
  'admin.scans.report': { GET: admin.scanReport },
};

/** Routes whose handlers stream request bodies and want to know when the client leaves. */
const STREAMING = new Set<Route['kind']>(['uploads', 'upload']);

/**
 * Runs around every routed request, before the access gate and the handler: the one place for
 * rules that apply across endpoints (read-only mode here; metrics and rate limits hook in the same
 * way). Calls `next` to go on, or throws to answer with an error.
 */
export type Middleware = (exchange: Exchange, next: () => Promise<void>) => Promise<void>;

/** Whether a request writes to the registry (the admin API and the token endpoint do not). */
function writesRegistry(ex: Exchange): boolean {
  return WRITE_METHODS.has(ex.req.method ?? '') && !ex.route.kind.startsWith('admin.') && ex.route.kind !== 'token';
}

/** A check run once the access gate has let a request through (see AppOptions.admitted). */
export type Admission = (exchange: Exchange) => Promise<void>;

/** registry:2's maintenance.readonly, and a registry started on a full disk: registry writes are refused. */
function readOnlyMode(mode: true | 'storage-full'): Middleware {
  return async (ex, next) => {
    if (writesRegistry(ex)) {
      throw mode === 'storage-full'
        ? new RegistryError('STORAGE_FULL', { message: 'the registry started on a full disk and serves pulls only; free space and restart it' })
        : new RegistryError('UNSUPPORTED', { message: 'the registry is in read-only mode' });
    }
    await next();
  };
}

/**
 * Registry writes wait while free space is low; pulls go on (storage.freespace). Deletes go
 * through: they are how an operator makes room.
 */
function roomToWrite(refusal: () => Promise<string | undefined>): Middleware {
  return async (ex, next) => {
    if (writesRegistry(ex) && ex.req.method !== 'DELETE') {
      const reason = await refusal();
      if (reason !== undefined) throw new RegistryError('STORAGE_FULL', { message: reason });
    }
    await next();
  };
}

/** The registry's request listener: routing, middleware, the access gate, thin handlers, the error envelope and the access log. */
export function createApp(registry: RegistryServices, options: AppOptions): RequestListener {
  const { log } = options;
  const middleware = options.middleware ?? [];
  // These two refuse registry writes only: a read need not pass through them (a layer of
  // promises per request on the hottest paths).
  const writeMiddleware: Middleware[] = [
    ...(options.readOnly ? [readOnlyMode(options.readOnly)] : []),
    ...(options.storageRoom ? [roomToWrite(options.storageRoom)] : []),
  ];
  const admitted = options.admitted ?? [];
  const observers = options.observers ?? [];
  const auth = options.auth;
  const setup: DispatchSetup = {
    registry,
    extras: { ...(auth ? { auth } : {}), ...(options.health ? { health: options.health } : {}), ...(options.scans ? { scans: options.scans } : {}) },
    routeOptions: { ...(auth?.tokens ? { tokenPath: auth.tokens.route } : {}), admin: auth !== undefined },
    middleware,
    withWriteMiddleware: [...middleware, ...writeMiddleware],
    admitted,
    observers,
  };
  return (req: IncomingMessage, res: ServerResponse) => {
    const trace: RequestTrace = { id: randomUUID() };
    if (options.accessLog) {
      const started = performance.now();
      // Per-connection counters, read before and after: requests on one connection take turns.
      const bytesIn = req.socket?.bytesRead ?? 0;
      const bytesOut = req.socket?.bytesWritten ?? 0;
      res.once('close', () => logAccess(log, req, res, { trace, started, bytesIn, bytesOut }));
    }
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    res.setHeader('X-Request-Id', trace.id);
    if (options.extraHeaders) for (const name in options.extraHeaders) res.setHeader(name, options.extraHeaders[name]!);
    dispatch(req, res, setup, trace).catch((error: unknown) => {
      const code = sendError(req, res, error, log, { requestId: trace.id });
      if (code) trace.code = code;
    });
  };
}

/** What the access log line tells of a request besides its HTTP facts. */
interface RequestTrace {
  id: string;
  /** Who was authenticated (user, robot or token subject). */
  user?: string;
  /** The OCI error code of the answer, when it was an error. */
  code?: string;
}

/** What every request of one app shares, built once. */
interface DispatchSetup {
  registry: RegistryServices;
  extras: { auth?: Auth; health?: HealthProbes; scans?: ScanAdmin };
  routeOptions: { tokenPath?: string; admin: boolean };
  /** Run around every routed request. */
  middleware: Middleware[];
  /** Run around registry writes: `middleware`, then the checks that only refuse writes. */
  withWriteMiddleware: Middleware[];
  admitted: Admission[];
  observers: ReadonlyArray<(exchange: Exchange) => void>;
}

async function dispatch(req: IncomingMessage, res: ServerResponse, setup: DispatchSetup, trace: RequestTrace): Promise<void> {
  const { auth } = setup.extras;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q >= 0 ? url.slice(0, q) : url;
  const route = matchRoute(path, setup.routeOptions);
  if (!route) throw new RegistryError('NOT_FOUND', { detail: { path } });
  const table = ROUTES[route.kind];
  const handler = table[req.method ?? 'GET'] as Handler | undefined;
  if (!handler) {
    throw new RegistryError('METHOD_NOT_ALLOWED', { headers: { Allow: Object.keys(table).join(', ') }, detail: { method: req.method } });
  }
  checkRouteName(route);
  const exchange: Exchange = { req, res, route, query: new URLSearchParams(q >= 0 ? url.slice(q + 1) : ''), registry: setup.registry, context: {}, ...setup.extras };
  for (const observe of setup.observers) observe(exchange);
  const handle = async () => {
    const context = guard(auth, req, route);
    exchange.context = context instanceof Promise ? await context : context;
    exchange.context.request = describeRequest(req, trace.id);
    exchange.context.setResponseHeader = (name, value) => {
      if (!res.headersSent) res.setHeader(name, value);
    };
    if (exchange.context.actor) trace.user = exchange.context.actor;
    for (const check of setup.admitted) await check(exchange);
    if (STREAMING.has(route.kind)) {
      const controller = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) controller.abort();
      });
      exchange.context.signal = controller.signal;
    }
    await handler(exchange);
  };
  const middleware = writesRegistry(exchange) ? setup.withWriteMiddleware : setup.middleware;
  if (middleware.length === 0) await handle();
  else await middleware.reduceRight<() => Promise<void>>((next, layer) => () => layer(exchange, next), handle)();
}

/** The request as notifications report it (Distribution's `request` block), under the id the access log and X-Request-Id carry. */
function describeRequest(req: IncomingMessage, id: string): NonNullable<Exchange['context']['request']> {
  const socket = req.socket;
  const ip = socket.remoteAddress ?? '';
  return {
    id,
    addr: `${ip.includes(':') ? `[${ip}]` : ip}:${socket.remotePort ?? 0}`,
    host: req.headers.host ?? '',
    method: req.method ?? 'GET',
    useragent: req.headers['user-agent'] ?? '',
    scheme: (socket as TLSSocket).encrypted ? 'https' : 'http',
  };
}

/**
 * One line per request, when it ends: who asked what, the answer (with its OCI error code), the
 * bytes each way (headers included) and the request id that the X-Request-Id header returned.
 */
function logAccess(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  at: { trace: RequestTrace; started: number; bytesIn: number; bytesOut: number },
): void {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  log.info(
    {
      requestId: at.trace.id,
      method: req.method,
      path: q >= 0 ? url.slice(0, q) : url,
      query: q >= 0 ? redactQuery(url.slice(q + 1)) : undefined,
      status: res.writableFinished ? res.statusCode : 499,
      error: at.trace.code,
      user: at.trace.user,
      bytesIn: (req.socket?.bytesRead ?? at.bytesIn) - at.bytesIn,
      bytesOut: (req.socket?.bytesWritten ?? at.bytesOut) - at.bytesOut,
      durationMs: Math.round((performance.now() - at.started) * 100) / 100,
      remote: req.socket?.remoteAddress,
      userAgent: req.headers['user-agent'],
    },
    'request',
  );
}

/** Query strings may carry tokens (`?token=`, `?_state=`); only known-safe keys are logged in full. */
function redactQuery(query: string): string {
  const params = new URLSearchParams(query);
  for (const key of [...params.keys()]) {
    if (!['n', 'last', 'digest', 'mount', 'from', 'tag', 'artifactType', 'scope', 'service', 'offline_token', 'client_id'].includes(key)) params.set(key, '[redacted]');
  }
  return params.toString();
}
