import type { Auth } from '../../auth/setup.js';
import { RegistryError } from '../../errors/index.js';
import type { JobState } from '../../registry/services.js';
import { readJsonBody } from '../body.js';
import { send, sendJson, type Exchange, type Handler } from '../exchange.js';
import type { AdminRoute } from '../router.js';

/**
 * The admin API behind `wharf user|robot|policy` and the job queue's view: JSON in and out. The
 * access gate lets only registry-wide administrators through (Basic credentials, or a token from
 * the built-in issuer carrying `registry:admin:*`), so these handlers only parse and call.
 */
type AdminHandler<K extends AdminRoute['kind']> = Handler<Extract<AdminRoute, { kind: K }>>;

/** Access control and the acting administrator; the gate guarantees both on admin routes. */
function adminOf(ex: Exchange): { admin: Auth['admin']; actor: string } {
  if (!ex.auth || ex.context.actor === undefined) throw new RegistryError('NOT_FOUND');
  return { admin: ex.auth.admin, actor: ex.context.actor };
}

export const listUsers: AdminHandler<'admin.users'> = async (ex) => sendJson(ex, 200, { users: await adminOf(ex).admin.listUsers() });

export const addUser: AdminHandler<'admin.users'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  sendJson(ex, 201, await admin.addUser(await readJsonBody(ex.req), actor));
};

export const removeUser: AdminHandler<'admin.user'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  await admin.removeUser(ex.route.subject, actor);
  send(ex, 204, {});
};

export const changePassword: AdminHandler<'admin.user.password'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  await admin.changePassword(ex.route.subject, await readJsonBody(ex.req), actor);
  send(ex, 204, {});
};

export const setGroups: AdminHandler<'admin.user.groups'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  await admin.setGroups(ex.route.subject, await readJsonBody(ex.req), actor);
  send(ex, 204, {});
};

export const listRobots: AdminHandler<'admin.robots'> = async (ex) => sendJson(ex, 200, { robots: await adminOf(ex).admin.listRobots() });

export const createRobot: AdminHandler<'admin.robots'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  sendJson(ex, 201, await admin.createRobot(await readJsonBody(ex.req), actor));
};

export const revokeRobot: AdminHandler<'admin.robot'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  await admin.revokeRobot(ex.route.subject, actor);
  send(ex, 204, {});
};

export const listPolicy: AdminHandler<'admin.policy'> = async (ex) => sendJson(ex, 200, await adminOf(ex).admin.listPolicy());

export const addRule: AdminHandler<'admin.policy.rules'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  sendJson(ex, 201, await admin.addRule(await readJsonBody(ex.req), actor));
};

export const removeRule: AdminHandler<'admin.policy.rule'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  await admin.removeRule(Number(ex.route.subject), actor);
  send(ex, 204, {});
};

/** `GET /admin/v1/policy/immutable`: every immutable-tag rule, config and API ones. */
export const listImmutableRules: AdminHandler<'admin.immutable'> = async (ex) => {
  adminOf(ex);
  sendJson(ex, 200, { rules: await ex.registry.tags.listImmutableRules() });
};

/** `POST /admin/v1/policy/immutable` with `{"repository": "release/*", "tag": "v*"}`. */
export const addImmutableRule: AdminHandler<'admin.immutable'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  const rule = await ex.registry.tags.addImmutableRule(await readJsonBody(ex.req), ex.context);
  admin.recordChange('immutable.add', actor, { rule: { id: rule.id, repository: rule.repository, tag: rule.tag } });
  sendJson(ex, 201, rule);
};

export const removeImmutableRule: AdminHandler<'admin.immutable.rule'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  const id = Number(ex.route.subject);
  await ex.registry.tags.removeImmutableRule(id);
  admin.recordChange('immutable.remove', actor, { rule: { id } });
  send(ex, 204, {});
};

const JOB_STATES: readonly JobState[] = ['ready', 'running', 'done', 'failed'];

/** `GET /admin/v1/jobs[?state=ready,running][&n=100]`: the background job queue, newest first. */
export const listJobs: AdminHandler<'admin.jobs'> = async (ex) => {
  adminOf(ex);
  const requested = ex.query.get('state');
  const states = requested === null ? undefined : requested.split(',').filter((s) => s !== '');
  if (states && !states.every((state) => (JOB_STATES as readonly string[]).includes(state))) {
    throw new RegistryError('PARAMETER_INVALID', { message: `state must be among ${JOB_STATES.join(', ')}`, detail: { state: requested } });
  }
  const limit = Number(ex.query.get('n') ?? 100);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n: ex.query.get('n') } });
  const jobs = await ex.registry.operations.jobs({ ...(states ? { states: states as JobState[] } : {}), limit });
  sendJson(ex, 200, { jobs });
};

/** `GET /admin/v1/quotas`: every rule (from the config file and the API) with its usage. */
export const listQuotas: AdminHandler<'admin.quotas'> = async (ex) => {
  adminOf(ex);
  sendJson(ex, 200, { quotas: await ex.registry.operations.quotas() });
};

/** `PUT /admin/v1/quotas/NAME` with `{"limit": "10GiB"}` (or bytes): sets the API's rule; takes effect at once. */
export const setQuota: AdminHandler<'admin.quota'> = async (ex) => {
  adminOf(ex);
  const body = await readJsonBody(ex.req);
  const limit = body !== null && typeof body === 'object' ? (body as { limit?: unknown }).limit : undefined;
  sendJson(ex, 200, await ex.registry.operations.setQuota(ex.route.subject, limit));
};

/** `DELETE /admin/v1/quotas/NAME`: removes the API's rule; a rule from the config file stays. */
export const removeQuota: AdminHandler<'admin.quota'> = async (ex) => {
  adminOf(ex);
  if (!(await ex.registry.operations.removeQuota(ex.route.subject))) {
    throw new RegistryError('NOT_FOUND', { message: 'no quota set through the API on this name', detail: { name: ex.route.subject } });
  }
  send(ex, 204, {});
};

/** `GET /admin/v1/usage[?prefix=team/][&n=1000]`: usage per repository, largest first. */
export const listUsage: AdminHandler<'admin.usage'> = async (ex) => {
  adminOf(ex);
  const limit = Number(ex.query.get('n') ?? 10_000);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n: ex.query.get('n') } });
  const prefix = ex.query.get('prefix');
  sendJson(ex, 200, { repositories: await ex.registry.operations.usage({ ...(prefix !== null ? { prefix } : {}), limit }) });
};

/** `GET /admin/v1/policy/retention`: every retention policy, in the order they apply. */
export const listRetentionPolicies: AdminHandler<'admin.retention'> = async (ex) => {
  adminOf(ex);
  sendJson(ex, 200, { policies: await ex.registry.retention.policies() });
};

/** `POST /admin/v1/policy/retention` with `{"repositories": "team/**", "keeplastpushed": 10, ...}`. */
export const addRetentionPolicy: AdminHandler<'admin.retention'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  const policy = await ex.registry.retention.addPolicy(await readJsonBody(ex.req), ex.context);
  admin.recordChange('retention.add', actor, { policy });
  sendJson(ex, 201, policy);
};

export const removeRetentionPolicy: AdminHandler<'admin.retention.policy'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  const id = Number(ex.route.subject);
  await ex.registry.retention.removePolicy(id);
  admin.recordChange('retention.remove', actor, { policy: { id } });
  send(ex, 204, {});
};

/**
 * `POST /admin/v1/policy/retention/run` with `{"dryRun": true, "repositories": "team/*"}` (both
 * optional; a body-less POST applies every policy): the run's report.
 */
export const runRetention: AdminHandler<'admin.retention.run'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  const body = ex.req.headers['content-length'] === '0' || ex.req.headers['content-length'] === undefined ? {} : await readJsonBody(ex.req);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new RegistryError('INVALID_REQUEST', { message: 'expected {"dryRun": BOOLEAN, "repositories": PATTERN}' });
  const { dryRun = false, repositories } = body as { dryRun?: unknown; repositories?: unknown };
  if (typeof dryRun !== 'boolean') throw new RegistryError('INVALID_REQUEST', { message: 'dryRun must be true or false', detail: { dryRun } });
  if (repositories !== undefined && (typeof repositories !== 'string' || !/^[a-z0-9._\-/*?]{1,255}$/.test(repositories))) {
    throw new RegistryError('INVALID_REQUEST', { message: 'repositories must be a repository pattern', detail: { repositories } });
  }
  const report = await ex.registry.retention.run({ dryRun, ...(repositories !== undefined ? { repositories } : {}), ...(ex.context.signal ? { signal: ex.context.signal } : {}) });
  if (!dryRun) admin.recordChange('retention.run', actor, { totals: report.totals });
  sendJson(ex, 200, report);
};

/** `GET /admin/v1/history?repository=NAME&tag=TAG[&n=100]`: the tag's recorded moves, newest first. */
export const tagHistory: AdminHandler<'admin.history'> = async (ex) => {
  adminOf(ex);
  const repository = ex.query.get('repository');
  const tag = ex.query.get('tag');
  if (repository === null || tag === null) throw new RegistryError('INVALID_REQUEST', { message: 'repository and tag are required query parameters' });
  const limit = Number(ex.query.get('n') ?? 100);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n: ex.query.get('n') } });
  const events = await ex.registry.tags.history(repository, tag, limit);
  sendJson(ex, 200, { repository, tag, history: events.map((event) => ({ ...event, at: new Date(event.at).toISOString() })) });
};

/**
 * `POST /admin/v1/history/restore` with `{"repository", "tag", "digest"}` or `{..., "at": ISO time}`:
 * points the tag back, as `wharf tag restore` does, recorded as this administrator's move.
 */
export const restoreTag: AdminHandler<'admin.history.restore'> = async (ex) => {
  const { admin, actor } = adminOf(ex);
  const body = await readJsonBody(ex.req);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new RegistryError('INVALID_REQUEST', { message: 'expected {"repository", "tag", "digest" or "at"}' });
  const { repository, tag, digest, at } = body as Record<string, unknown>;
  if (typeof repository !== 'string' || typeof tag !== 'string') throw new RegistryError('INVALID_REQUEST', { message: 'repository and tag are required strings' });
  if ((digest === undefined) === (at === undefined)) throw new RegistryError('INVALID_REQUEST', { message: 'give exactly one of digest and at' });
  let target: { digest: string } | { at: number };
  if (digest !== undefined) {
    if (typeof digest !== 'string') throw new RegistryError('INVALID_REQUEST', { message: 'digest must be a string' });
    target = { digest };
  } else {
    const when = typeof at === 'number' ? at : typeof at === 'string' ? Date.parse(at) : Number.NaN;
    if (!Number.isFinite(when)) throw new RegistryError('INVALID_REQUEST', { message: 'at must be an ISO 8601 time or milliseconds since the epoch', detail: { at } });
    target = { at: when };
  }
  const result = await ex.registry.tags.restore(repository, tag, target, ex.context);
  admin.recordChange('tag.restore', actor, { repository, tag, digest: result.digest });
  sendJson(ex, 200, result);
};

/**
 * `GET /admin/v1/events[/ENDPOINT]`: each notification endpoint's position, pending entries and
 * failures, and the events it parked.
 */
export const listEvents: AdminHandler<'admin.events' | 'admin.events.endpoint'> = async (ex) => {
  adminOf(ex);
  const endpoint = ex.route.kind === 'admin.events.endpoint' ? ex.route.subject : undefined;
  sendJson(ex, 200, await ex.registry.operations.notifications(endpoint !== undefined ? { endpoint } : {}));
};

/** `POST /admin/v1/events/ENDPOINT/replay` with `{}` (all parked) or `{"ids": [1, 2]}`: puts parked events back in line. */
export const replayEvents: AdminHandler<'admin.events.replay'> = async (ex) => {
  adminOf(ex);
  const body = await readJsonBody(ex.req);
  const ids = body !== null && typeof body === 'object' ? (body as { ids?: unknown }).ids : undefined;
  if (ids !== undefined && (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id) && (id as number) > 0))) {
    throw new RegistryError('INVALID_REQUEST', { message: 'ids must be a list of parked event ids', detail: { ids } });
  }
  const replayed = await ex.registry.operations.replayNotifications(ex.route.subject, ids as number[] | undefined);
  sendJson(ex, 200, { endpoint: ex.route.subject, replayed });
};

/** Scanning, when on; NOT_FOUND otherwise (the endpoints do not exist then). */
function scansOf(ex: Exchange): NonNullable<Exchange['scans']> {
  adminOf(ex);
  if (!ex.scans) throw new RegistryError('NOT_FOUND', { message: 'image scanning is off (security.scanning.enabled)' });
  return ex.scans;
}

/** `GET /admin/v1/scans?repository=R&n=100`: the last scan of each image, newest first. */
export const listScans: AdminHandler<'admin.scans'> = async (ex) => {
  const scans = scansOf(ex);
  const limit = Number(ex.query.get('n') ?? 100);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n: ex.query.get('n') } });
  const repository = ex.query.get('repository');
  sendJson(ex, 200, { scans: scans.list({ limit, ...(repository !== null ? { repository } : {}) }) });
};

/** `POST /admin/v1/scans` with `{"repository": "team/app", "reference": "v1"}`: scans now and answers with the outcome. */
export const scanNow: AdminHandler<'admin.scans'> = async (ex) => {
  const scans = scansOf(ex);
  const body = (await readJsonBody(ex.req)) as { repository?: unknown; reference?: unknown } | null;
  if (!body || typeof body.repository !== 'string' || typeof body.reference !== 'string') {
    throw new RegistryError('INVALID_REQUEST', { message: 'expected {"repository": "...", "reference": "tag or digest"}' });
  }
  sendJson(ex, 200, { scans: await scans.scanNow(body.repository, body.reference) });
};

/** `GET /admin/v1/scans/report?repository=R&digest=D`: the image's vulnerability report. */
export const scanReport: AdminHandler<'admin.scans.report'> = async (ex) => {
  const scans = scansOf(ex);
  const repository = ex.query.get('repository');
  const digest = ex.query.get('digest');
  if (!repository || !digest) throw new RegistryError('PARAMETER_INVALID', { message: 'repository and digest are required', detail: { repository, digest } });
  const report = await scans.report(repository, digest);
  if (!report) throw new RegistryError('NOT_FOUND', { message: 'no vulnerability report for this image yet', detail: { repository, digest } });
  sendJson(ex, 200, report);
};
