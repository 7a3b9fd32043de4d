import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { AccessRequest } from '../auth/access-control.js';
import { ANONYMOUS, actorOf, type Identity } from '../auth/identity.js';
import type { Auth } from '../auth/setup.js';
import { isRegistryError, RegistryError } from '../errors/index.js';
import { immutableRuleFor } from '../metadata/immutable-tag-rules.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { isValidRepositoryName, isValidTag } from '../oci/names.js';
import type { RequestContext } from '../registry/context.js';
import type { TagDetail } from '../metadata/metadata-store.js';
import type { RegistryServices } from '../registry/services.js';
import { listImageSignatures, summarizeScanArtifacts } from '../registry/image-artifacts.js';
import type { SignaturePolicy } from '../registry/signature-policy.js';
import { SCRIPT, STYLESHEET } from './assets.js';
import type { Html } from './html.js';
import { renderMarkdown } from './markdown.js';
import {
  errorPage,
  manifestPage,
  repositoryListPage,
  repositoryPage,
  signInPage,
  tagHistoryPage,
  type ImageConfig,
  type ListedRepository,
  type PageViewer,
  type TagRow,
} from './pages.js';
import { newSession, readCookie, SESSION_COOKIE, SESSION_TTL_MS, sessionCookie, type Session, type SessionKeys } from './session.js';

export interface UiOptions {
  /** Where the UI lives (`ui.path`), ending in `/`. */
  basePath: string;
  /** Access control; without it every repository is shown and there is no signing in. */
  auth?: Auth;
  deleteEnabled: boolean;
  /** Registry writes are refused (maintenance.readonly, or started on a full disk): so are the UI's changes. */
  readOnly?: boolean;
  sessionKeys: SessionKeys;
  log: Logger;
  /** `security.signatures`: the keys that name who signed an image on its page. */
  signaturePolicies?: readonly SignaturePolicy[];
}

const TAGS_PER_PAGE = 50;
const REPOSITORIES_PER_PAGE = 25;
const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_FORM_BYTES = 300 * 1024;
const MAX_SHOWN_MANIFEST_CHARS = 30_000;

/** Who is looking, resolved from the session cookie on every request. */
interface Viewer extends PageViewer {
  session: Session;
  identity: Identity;
  /** The session cookie must be (re)written: it was missing, invalid or changed. */
  fresh: boolean;
  context: RequestContext;
  canPull(repository: string): boolean;
  can(repository: string, action: 'push' | 'delete'): boolean;
  deleteEnabled: boolean;
  /** The session as its cookie value. */
  seal(): string;
}

/**
 * The web UI (docs/web-ui.md): server-rendered pages over the registry services, showing only
 * what the viewer may pull and sending every change through the same services and access
 * checks as the registry API. Returns the request handler for paths under `basePath`.
 */
export function createUi(registry: RegistryServices, options: UiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const base = options.basePath;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://ui.invalid');
    const rest = url.pathname.slice(base.length);
    setSecurityHeaders(res);
    if (rest === '_/app.css') return sendAsset(req, res, 'text/css; charset=utf-8', STYLESHEET);
    if (rest === '_/app.js') return sendAsset(req, res, 'text/javascript; charset=utf-8', SCRIPT);
    const viewer = await viewerFor(req, options);
    try {
      await route(req, res, url, rest, viewer, registry, options);
    } catch (error) {
      if (isRegistryError(error) && (error.status === 404 || error.code === 'NAME_INVALID' || error.code === 'TAG_INVALID' || error.code === 'DIGEST_INVALID')) {
        return sendPage(res, viewer, 404, errorPage(viewer, 404, 'There is nothing here, or you may not see it.'));
      }
      if (isRegistryError(error) && error.status < 500) return sendPage(res, viewer, error.status, errorPage(viewer, error.status, error.message));
      options.log.error({ err: error, path: url.pathname }, 'web UI request failed');
      return sendPage(res, viewer, 500, errorPage(viewer, 500, 'The page could not be shown; the error is in the registry log.'));
    }
  };
  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.log.error({ err: error }, 'web UI request failed');
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('internal error');
    });
  };
}

async function route(req: IncomingMessage, res: ServerResponse, url: URL, rest: string, viewer: Viewer, registry: RegistryServices, options: UiOptions): Promise<void> {
  const method = req.method ?? 'GET';
  const notice = url.searchParams.get('notice');
  if (method === 'POST') {
    const form = await readForm(req);
    if (!sameOrigin(req) || !options.sessionKeys.checkCsrf(viewer.session, form.get('csrf') ?? undefined)) {
      return sendPage(res, viewer, 403, errorPage(viewer, 403, 'The form expired or came from another site; reload the page and try again.'));
    }
    return post(req, res, rest, form, viewer, registry, options);
  }
  if (method !== 'GET' && method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD, POST');
    return sendPage(res, viewer, 405, errorPage(viewer, 405, 'Method not allowed.'));
  }
  if (rest === '') return listPage(res, url, viewer, registry);
  if (rest === 'login') {
    if (!options.auth) return redirect(res, viewer, viewer.base);
    return sendPage(res, viewer, 200, signInPage(viewer, safeNext(url.searchParams.get('next'), viewer.base)));
  }
  const target = repositoryPath(rest);
  if (!target) throw new RegistryError('NOT_FOUND');
  const { name, action, argument } = target;
  // A repository the viewer may not pull does not exist, as far as the UI says.
  if (!viewer.canPull(name)) throw new RegistryError('NAME_UNKNOWN');
  if (action === undefined) return repositoryView(res, url, viewer, registry, name, notice);
  if (action === 'm' && argument !== undefined) return manifestView(res, viewer, registry, name, argument, options.signaturePolicies ?? []);
  if (action === 'history' && argument !== undefined) {
    if (!isValidTag(argument)) throw new RegistryError('TAG_INVALID');
    const events = await registry.tags.history(name, argument, 100);
    return sendPage(res, viewer, 200, tagHistoryPage(viewer, name, argument, events, viewer.can(name, 'push'), notice));
  }
  throw new RegistryError('NOT_FOUND');
}

/** `r/<name>[/-/<action>[/<argument>]]`: names hold slashes, so `-` (never a name component) marks the end. */
function repositoryPath(rest: string): { name: string; action?: string; argument?: string } | undefined {
  if (!rest.startsWith('r/')) return undefined;
  let path: string;
  try {
    path = decodeURIComponent(rest.slice(2));
  } catch {
    return undefined;
  }
  const marker = path.indexOf('/-/');
  const name = marker < 0 ? path : path.slice(0, marker);
  if (!isValidRepositoryName(name)) return undefined;
  if (marker < 0) return { name };
  const [action, argument, extra] = path.slice(marker + 3).split('/');
  if (extra !== undefined || !action) return undefined;
  return argument !== undefined ? { name, action, argument } : { name, action };
}

async function post(req: IncomingMessage, res: ServerResponse, rest: string, form: URLSearchParams, viewer: Viewer, registry: RegistryServices, options: UiOptions): Promise<void> {
  if (rest === 'login') return signIn(req, res, form, viewer, options);
  if (rest === 'logout') {
    viewer.session = newSession();
    viewer.fresh = true;
    return redirect(res, viewer, `${viewer.base}?notice=signed-out`);
  }
  const target = repositoryPath(rest);
  if (!target || target.argument !== undefined || !viewer.canPull(target.name)) throw new RegistryError('NAME_UNKNOWN');
  if (options.readOnly) throw new RegistryError('UNSUPPORTED', { message: 'the registry is in read-only mode' });
  const { name } = target;
  const back = `${viewer.base}r/${name}`;
  switch (target.action) {
    case 'star': {
      if (viewer.user === undefined) return redirect(res, viewer, `${viewer.base}login?next=${encodeURIComponent(back)}`);
      const starred = form.get('star') !== 'off';
      await registry.search.star(name, starred, viewer.context);
      return redirect(res, viewer, `${back}?notice=${starred ? 'starred' : 'unstarred'}`);
    }
    case 'delete': {
      const tag = form.get('tag') ?? '';
      if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID');
      if (!viewer.can(name, 'delete')) throw new RegistryError('DENIED', { message: 'you may not delete tags of this repository' });
      await registry.manifests.delete(name, { tag }, viewer.context);
      return redirect(res, viewer, `${back}?notice=deleted`);
    }
    case 'restore': {
      const tag = form.get('tag') ?? '';
      const digest = form.get('digest') ?? '';
      if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID');
      if (!isDigest(digest)) throw new RegistryError('DIGEST_INVALID');
      if (!viewer.can(name, 'push')) throw new RegistryError('DENIED', { message: 'restoring a tag needs push rights' });
      await registry.tags.restore(name, tag, { digest }, viewer.context);
      return redirect(res, viewer, `${back}/-/history/${tag}?notice=restored`);
    }
    case 'readme': {
      if (!viewer.can(name, 'push')) throw new RegistryError('DENIED', { message: 'setting the README needs push rights' });
      await registry.search.setReadme(name, form.get('readme') ?? '', viewer.context);
      return redirect(res, viewer, `${back}?notice=readme`);
    }
    default:
      throw new RegistryError('NOT_FOUND');
  }
}

async function signIn(req: IncomingMessage, res: ServerResponse, form: URLSearchParams, viewer: Viewer, options: UiOptions): Promise<void> {
  const auth = options.auth;
  const next = safeNext(form.get('next'), viewer.base);
  if (!auth) return redirect(res, viewer, next);
  const username = form.get('username') ?? '';
  try {
    // The registry's own check: htpasswd, then Wharf accounts; throttled and audited the same way.
    const identity = await auth.access.login(username, form.get('password') ?? '', accessRequest(req));
    const user = actorOf(identity);
    if (user === undefined) throw new RegistryError('UNAUTHORIZED');
    viewer.session = newSession(user);
    viewer.fresh = true;
    return redirect(res, viewer, next);
  } catch (error) {
    if (!isRegistryError(error) || (error.code !== 'UNAUTHORIZED' && error.code !== 'TOOMANYREQUESTS')) throw error;
    const message = error.code === 'TOOMANYREQUESTS' ? 'Too many failed sign-ins; try again later.' : 'Wrong user name or password.';
    return sendPage(res, viewer, error.code === 'TOOMANYREQUESTS' ? 429 : 401, signInPage(viewer, next, message));
  }
}

async function listPage(res: ServerResponse, url: URL, viewer: Viewer, registry: RegistryServices): Promise<void> {
  const query = (url.searchParams.get('q') ?? '').slice(0, 200);
  const page = positiveInt(url.searchParams.get('page'), 1);
  const result = await registry.search.search({ query, page, pageSize: REPOSITORIES_PER_PAGE, visible: (name) => viewer.canPull(name) });
  const names = result.results.map((r) => r.name);
  const starred = await registry.search.starredBy(viewer.user, names);
  const rows: ListedRepository[] = await Promise.all(
    result.results.map(async (r) => {
      const profile = await registry.search.profile(r.name);
      return {
        name: r.name,
        description: r.description,
        stars: r.star_count,
        official: r.is_official,
        starred: starred.has(r.name),
        bytes: profile.bytes,
        ...(profile.lastPushedAt !== undefined ? { lastPushedAt: profile.lastPushedAt } : {}),
      };
    }),
  );
  sendPage(res, viewer, 200, repositoryListPage(viewer, query, result, rows, url.searchParams.get('notice')));
}

async function repositoryView(res: ServerResponse, url: URL, viewer: Viewer, registry: RegistryServices, name: string, notice: string | null): Promise<void> {
  const profile = await registry.search.profile(name);
  const sortParam = url.searchParams.get('sort');
  const sort = sortParam === 'name' || sortParam === 'size' || sortParam === 'pushed' ? sortParam : 'pushed';
  const descending = (url.searchParams.get('order') ?? (sort === 'name' ? 'asc' : 'desc')) === 'desc';
  const pages = Math.max(1, Math.ceil(profile.tagCount / TAGS_PER_PAGE));
  const page = Math.min(positiveInt(url.searchParams.get('page'), 1), pages);
  const details = await registry.search.tagDetails(name, { sort, descending, offset: (page - 1) * TAGS_PER_PAGE, limit: TAGS_PER_PAGE });
  const rules = await registry.tags.listImmutableRules();
  // Tags often share a manifest: read each one's platforms once per page.
  const platforms = new Map<string, Promise<string[]>>();
  const platformsOnce = (tag: TagDetail) => {
    let known = platforms.get(tag.digest);
    if (!known) platforms.set(tag.digest, (known = platformsOf(registry, name, tag.content, tag.mediaType)));
    return known;
  };
  const rows: TagRow[] = await Promise.all(
    details.tags.map(async (tag) => ({ ...tag, platforms: await platformsOnce(tag), immutable: immutableRuleFor(rules, name, tag.name) !== undefined })),
  );
  const starred = viewer.user !== undefined && (await registry.search.starredBy(viewer.user, [name])).has(name);
  const readme = profile.readme !== undefined ? await renderMarkdown(profile.readme) : undefined;
  sendPage(
    res,
    viewer,
    200,
    repositoryPage(
      viewer,
      name,
      profile,
      readme,
      { rows, total: details.total, sort: { sort, descending, page, pages } },
      { star: viewer.user !== undefined, starred, push: viewer.can(name, 'push'), delete: viewer.can(name, 'delete') && viewer.deleteEnabled, official: registry.search.isOfficial(name) },
      notice,
    ),
  );
}

/** An index's platforms from its own bytes; an image's from its config (small reads, one page of tags). */
async function platformsOf(registry: RegistryServices, name: string, content: Buffer, mediaType: string): Promise<string[]> {
  let parsed: ParsedManifest;
  try {
    parsed = parseManifest(content, mediaType);
  } catch {
    return [];
  }
  if (parsed.kind === 'index') {
    return parsed.manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => platformName(d.platform!));
  }
  const config = await readConfig(registry, name, parsed);
  return config?.os ? [platformName({ os: config.os, architecture: config.architecture ?? '', ...(config.variant ? { variant: config.variant } : {}) })] : [];
}

function platformName(p: { os: string; architecture: string; variant?: string }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

async function readConfig(registry: RegistryServices, name: string, manifest: ParsedManifest): Promise<ImageConfig | undefined> {
  const config = manifest.config;
  if (!config || config.size > MAX_CONFIG_BYTES || !/config|container\.image/.test(config.mediaType)) return undefined;
  try {
    const opened = await registry.blobs.open(name, config.digest as Digest);
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream) chunks.push(chunk as Buffer);
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, any>;
    const strings = (value: unknown) => (Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined);
    const labels: Record<string, string> = {};
    for (const [key, value] of Object.entries((doc.config?.Labels ?? {}) as Record<string, unknown>)) if (typeof value === 'string') labels[key] = value;
    const image: ImageConfig = {
      labels,
      history: (Array.isArray(doc.history) ? doc.history : []).map((h: Record<string, unknown>) => ({
        ...(typeof h.created === 'string' ? { created: h.created } : {}),
        ...(typeof h.created_by === 'string' ? { createdBy: h.created_by } : {}),
        ...(typeof h.comment === 'string' ? { comment: h.comment } : {}),
        emptyLayer: h.empty_layer === true,
      })),
    };
    if (typeof doc.os === 'string') image.os = doc.os;
    if (typeof doc.architecture === 'string') image.architecture = doc.architecture;
    if (typeof doc.variant === 'string') image.variant = doc.variant;
    if (typeof doc.created === 'string') image.created = doc.created;
    const entrypoint = strings(doc.config?.Entrypoint);
    if (entrypoint) image.entrypoint = entrypoint;
    const cmd = strings(doc.config?.Cmd);
    if (cmd) image.cmd = cmd;
    return image;
  } catch {
    return undefined;
  }
}

async function manifestView(res: ServerResponse, viewer: Viewer, registry: RegistryServices, name: string, reference: string, policies: readonly SignaturePolicy[]): Promise<void> {
  const ref = isDigest(reference) ? { digest: reference as Digest } : isValidTag(reference) ? { tag: reference } : undefined;
  if (!ref) throw new RegistryError('NOT_FOUND');
  // No request context: looking at a manifest in the UI is not a pull.
  const record = await registry.manifests.get(name, ref);
  const parsed = parseManifest(record.content, record.mediaType);
  const image = parsed.kind === 'image' ? await readConfig(registry, name, parsed) : undefined;
  const referrers = await registry.discovery.referrers(name, record.digest as Digest);
  const signatures = await listImageSignatures(registry, policies, name, record.digest as Digest);
  const scanArtifacts = await summarizeScanArtifacts(registry, name, referrers);
  let pretty: string;
  try {
    pretty = JSON.stringify(JSON.parse(record.content.toString('utf8')), null, 2);
  } catch {
    pretty = record.content.toString('utf8');
  }
  // Pages stay small: a manifest of many megabytes is shown in part.
  if (pretty.length > MAX_SHOWN_MANIFEST_CHARS) pretty = `${pretty.slice(0, MAX_SHOWN_MANIFEST_CHARS)}\n… (${record.content.length} bytes in all; the rest is not shown)`;
  sendPage(
    res,
    viewer,
    200,
    manifestPage(viewer, {
      name,
      ...('tag' in ref ? { tag: ref.tag } : {}),
      digest: record.digest,
      mediaType: record.mediaType,
      size: record.content.length,
      kind: parsed.kind,
      children: parsed.manifests,
      ...(parsed.config ? { config: parsed.config } : {}),
      layers: parsed.layers,
      annotations: parsed.annotations ?? {},
      ...(image ? { image } : {}),
      referrers,
      signatures,
      scanArtifacts,
      content: pretty,
    }),
  );
}

async function viewerFor(req: IncomingMessage, options: UiOptions): Promise<Viewer> {
  const keys = options.sessionKeys;
  const opened = keys.open(readCookie(req.headers.cookie, SESSION_COOKIE));
  let session = opened ?? newSession();
  let fresh = opened === undefined;
  const auth = options.auth;
  let identity: Identity = ANONYMOUS;
  if (auth && session.user !== undefined) {
    // Resolved again each time: a removed user is signed out at once, new groups apply at once.
    const account = await auth.access.accountFor(session.user);
    if (account && account.kind !== 'anonymous') identity = account;
    else {
      session = newSession();
      fresh = true;
    }
  }
  const user = auth ? actorOf(identity) : undefined;
  const canPull = (repository: string) => (auth ? auth.access.canPull(identity, repository) : isValidRepositoryName(repository));
  const socket = req.socket as TLSSocket;
  const viewer: Viewer = {
    session,
    identity,
    fresh,
    signIn: auth !== undefined,
    ...(user !== undefined ? { user } : {}),
    // The CSRF token follows the session when a sign-in or sign-out replaces it.
    get csrf() {
      return keys.csrfToken(this.session);
    },
    seal() {
      return keys.seal(this.session);
    },
    base: options.basePath,
    host: req.headers.host ?? 'localhost',
    deleteEnabled: options.deleteEnabled,
    context: {
      ...(user !== undefined ? { actor: user } : {}),
      canRead: canPull,
      canList: canPull,
      request: {
        id: '',
        addr: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`,
        host: req.headers.host ?? '',
        method: req.method ?? 'GET',
        useragent: req.headers['user-agent'] ?? '',
        scheme: socket.encrypted ? ('https' as const) : ('http' as const),
      },
    },
    canPull,
    can: (repository: string, action: 'push' | 'delete') => (auth ? auth.access.policy.can(identity, repository, action) : true),
  };
  return viewer;
}

function accessRequest(req: IncomingMessage): AccessRequest {
  return { authorization: undefined, remote: req.socket.remoteAddress, host: req.headers.host, secure: (req.socket as TLSSocket).encrypted === true };
}

/** A form post must come from a page of this registry: Origin (when sent) names this host. */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || origin === 'null') return origin === undefined;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_FORM_BYTES) throw new RegistryError('REQUEST_TOO_LARGE');
    chunks.push(chunk);
  }
  if (type !== 'application/x-www-form-urlencoded') return new URLSearchParams();
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Where to go after signing in: a path of this UI only, never another site. */
function safeNext(next: string | null, base: string): string {
  if (next === null || !next.startsWith(base) || next.startsWith('//') || next.includes('\\')) return base;
  return next;
}

function positiveInt(raw: string | null, fallback: number): number {
  if (raw === null || !/^\d{1,7}$/.test(raw) || Number(raw) < 1) return fallback;
  return Number(raw);
}

function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('X-Frame-Options', 'DENY');
}

/** Writes the session cookie when it is new or replaced (sign-in, sign-out, an expired one). */
function writeSession(res: ServerResponse, viewer: Viewer): void {
  if (!viewer.fresh) return;
  const secure = (res.req.socket as TLSSocket).encrypted === true;
  res.setHeader('Set-Cookie', sessionCookie(viewer.seal(), { path: viewer.base, secure, maxAgeSeconds: SESSION_TTL_MS / 1000 }));
}

function sendPage(res: ServerResponse, viewer: Viewer, status: number, page: Html): void {
  writeSession(res, viewer);
  const body = Buffer.from(page.value);
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function redirect(res: ServerResponse, viewer: Viewer, location: string): void {
  writeSession(res, viewer);
  res.writeHead(303, { Location: location, 'Content-Length': 0, 'Cache-Control': 'no-store' });
  res.end();
}

function sendAsset(req: IncomingMessage, res: ServerResponse, type: string, text: string): void {
  const body = Buffer.from(text);
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'public, max-age=3600' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
