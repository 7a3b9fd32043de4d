import { RegistryError } from '../errors/index.js';
import { globMatches, immutableRuleFor, type ImmutableTagRule } from '../metadata/immutable-tag-rules.js';
import type { ManifestNode, MetadataStore, RepositoryGraph } from '../metadata/metadata-store.js';
import {
  describeRetentionPolicy,
  formatRetentionDuration,
  governsTags,
  parseRetentionPolicy,
  retentionPolicyFor,
  type RetentionPolicy,
  type RetentionPolicySpec,
} from '../metadata/retention-policies.js';
import type { RequestContext } from './context.js';

const PAGE = 200;
/** Manifests deleted per commit. */
const BATCH = 500;
/** Who the tag history names for removals made by retention. */
export const RETENTION_ACTOR = 'retention';

export interface RetentionRunOptions {
  /** List what would go; change nothing. */
  dryRun: boolean;
  /** Only repositories matching this glob (all when absent). */
  repositories?: string;
  signal?: AbortSignal;
}

export interface TagDecision {
  tag: string;
  digest: string;
  /** Why it goes or stays, in words (`pushed 40d ago, older than 30d`, `immutable (rule 2)`). */
  reason: string;
}

export interface RepositoryRetention {
  repository: string;
  policy: number;
  deletedTags: TagDecision[];
  keptTags: TagDecision[];
  /** Tags that moved or became immutable between the decision and the deletion. */
  skippedTags: TagDecision[];
  deletedManifests: string[];
  /** Untagged and old enough, but kept so that a restore within history.retention finds them. */
  restorableManifests: string[];
}

export interface RetentionReport {
  dryRun: boolean;
  startedAt: string;
  durationMs: number;
  policies: Array<Record<string, unknown>>;
  repositories: RepositoryRetention[];
  totals: { repositories: number; tagsDeleted: number; tagsKept: number; manifestsDeleted: number };
}

/** The policy as the admin API and `wharf policy retention list` show it. */
export interface RetentionPolicyView extends Record<string, unknown> {
  id: number;
  source: 'config' | 'api';
  repositories: string;
  createdAt: string;
  createdBy?: string;
}

export function viewRetentionPolicy(policy: RetentionPolicy): RetentionPolicyView {
  return {
    id: policy.id,
    source: policy.source,
    ...describeRetentionPolicy(policy),
    repositories: policy.repositories,
    createdAt: new Date(policy.createdAt).toISOString(),
    ...(policy.createdBy !== undefined ? { createdBy: policy.createdBy } : {}),
  };
}

/**
 * Retention policies (src/metadata/retention-policies.ts) and their runs. A run reads each
 * repository in one snapshot, decides, then acts through the metadata store, which re-checks
 * every removal in its own commit: a tag pushed again or made immutable since the decision stays,
 * and an untagged manifest goes only if still untagged and unreferenced. What retention removes
 * is in the tag history like any delete, so `wharf tag restore` brings a tag back within
 * `history.retention`; freeing the blobs is the garbage collector's work.
 */
export class RetentionService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: { historyRetentionMs: number },
  ) {}

  async list(): Promise<RetentionPolicyView[]> {
    return (await this.metadata.listRetentionPolicies()).map(viewRetentionPolicy);
  }

  /** Adds an API policy from its config.yml-shaped JSON; INVALID_REQUEST naming what is wrong. */
  async add(input: unknown, context: RequestContext = {}): Promise<RetentionPolicyView> {
    const spec = parseRetentionPolicy(input);
    return viewRetentionPolicy(await this.metadata.addRetentionPolicy(spec, context.actor ? { actor: context.actor } : {}));
  }

  /** NOT_FOUND when there is no such policy; DENIED for one from config.yml. */
  async remove(id: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id < 1) throw new RegistryError('NOT_FOUND', { message: 'no such retention policy', detail: { id } });
    if (await this.metadata.removeRetentionPolicy(id)) return;
    const policy = (await this.metadata.listRetentionPolicies()).find((p) => p.id === id);
    if (policy?.source === 'config') {
      throw new RegistryError('DENIED', { message: `retention policy ${id} comes from config.yml (retention.policies); change it there`, detail: { id } });
    }
    throw new RegistryError('NOT_FOUND', { message: 'no such retention policy', detail: { id } });
  }

  /** At start-up: config.yml's `retention.policies` replace the config ones in the store. */
  async applyConfigPolicies(raw: unknown): Promise<void> {
    await this.metadata.replaceConfigRetentionPolicies(parseConfigRetentionPolicies(raw));
  }

  /** Evaluates every policy against every repository it governs, and acts unless `dryRun`. */
  async run(options: RetentionRunOptions): Promise<RetentionReport> {
    const started = Date.now();
    const policies = await this.metadata.listRetentionPolicies();
    const report: RetentionReport = {
      dryRun: options.dryRun,
      startedAt: new Date(started).toISOString(),
      durationMs: 0,
      policies: policies.map(viewRetentionPolicy),
      repositories: [],
      totals: { repositories: 0, tagsDeleted: 0, tagsKept: 0, manifestsDeleted: 0 },
    };
    if (policies.length > 0) {
      const immutable = await this.metadata.listImmutableTagRules();
      let after: string | undefined;
      for (;;) {
        const page = await this.metadata.listRepositoryGraphs({ ...(after !== undefined ? { after } : {}), limit: PAGE });
        for (const graph of page) {
          options.signal?.throwIfAborted();
          if (options.repositories !== undefined && !globMatches(options.repositories, graph.name)) continue;
          const policy = retentionPolicyFor(policies, graph.name);
          if (!policy) continue;
          const outcome = await this.apply(graph, policy, immutable, started, options.dryRun);
          if (outcome.deletedTags.length + outcome.keptTags.length + outcome.deletedManifests.length + outcome.restorableManifests.length === 0) continue;
          report.repositories.push(outcome);
        }
        if (page.length < PAGE) break;
        after = page[page.length - 1]!.name;
      }
    }
    for (const repo of report.repositories) {
      report.totals.repositories += 1;
      report.totals.tagsDeleted += repo.deletedTags.length;
      report.totals.tagsKept += repo.keptTags.length;
      report.totals.manifestsDeleted += repo.deletedManifests.length;
    }
    report.durationMs = Date.now() - started;
    return report;
  }

  private async apply(graph: RepositoryGraph, policy: RetentionPolicy, immutable: readonly ImmutableTagRule[], now: number, dryRun: boolean): Promise<RepositoryRetention> {
    const outcome: RepositoryRetention = {
      repository: graph.name,
      policy: policy.id,
      deletedTags: [],
      keptTags: [],
      skippedTags: [],
      deletedManifests: [],
      restorableManifests: [],
    };
    const nodes = new Map(graph.manifests.map((node) => [node.digest, node]));
    if (governsTags(policy)) {
      const decisions = decideTags(graph, nodes, policy, immutable, now);
      outcome.keptTags = decisions.kept;
      if (dryRun) outcome.deletedTags = decisions.deleted;
      else {
        const removed = new Set(await this.metadata.retireTags(graph.name, decisions.deleted, { actor: RETENTION_ACTOR }));
        for (const decision of decisions.deleted) (removed.has(decision.tag) ? outcome.deletedTags : outcome.skippedTags).push(decision);
      }
    }
    if (policy.untaggedOlderThanMs !== undefined) {
      const untagged = this.untaggedToDelete(graph, nodes, outcome.deletedTags, policy.untaggedOlderThanMs, now);
      outcome.restorableManifests = untagged.restorable;
      if (dryRun) outcome.deletedManifests = untagged.doomed;
      else outcome.deletedManifests = await this.deleteManifests(graph.name, untagged.doomed, now - policy.untaggedOlderThanMs, now);
    }
    return outcome;
  }

  /**
   * Untagged manifests pushed before the cutoff that nothing kept needs: kept are tagged ones
   * (after this run's tag removals), those pushed within the cutoff, those a tag pointed at within
   * the history retention, and everything those keep (children, subject chain, referrers).
   * Returned referrers and indexes first, so their subjects and children are free when reached.
   */
  private untaggedToDelete(
    graph: RepositoryGraph,
    nodes: Map<string, ManifestNode>,
    removedTags: readonly TagDecision[],
    olderThanMs: number,
    now: number,
  ): { doomed: string[]; restorable: string[] } {
    const cutoff = now - olderThanMs;
    const historySince = this.options.historyRetentionMs > 0 ? now - this.options.historyRetentionMs : undefined;
    const removed = new Set(removedTags.map((t) => t.tag));
    const untaggedNow = new Set(removedTags.map((t) => t.digest));
    const referrers = new Map<string, string[]>();
    for (const node of graph.manifests) {
      if (node.subject !== undefined) referrers.set(node.subject, [...(referrers.get(node.subject) ?? []), node.digest]);
    }
    const queue: string[] = [];
    const restorable: string[] = [];
    for (const node of graph.manifests) {
      const tags = node.tags.filter((tag) => !removed.has(tag));
      if (tags.length > 0 || node.touchedAt >= cutoff) queue.push(node.digest);
      else if (historySince !== undefined && ((node.taggedAt !== undefined && node.taggedAt >= historySince) || untaggedNow.has(node.digest))) {
        // A restore may still point a tag back at it (this run's removals are history too).
        restorable.push(node.digest);
        queue.push(node.digest);
      }
    }
    const kept = new Set<string>();
    while (queue.length > 0) {
      const digest = queue.pop()!;
      const node = nodes.get(digest);
      if (!node || kept.has(digest)) continue;
      kept.add(digest);
      queue.push(...node.children, ...(referrers.get(digest) ?? []));
      if (node.subject !== undefined) queue.push(node.subject);
    }
    const doomed = graph.manifests.filter((node) => !kept.has(node.digest));
    // Referrers (with a subject) and indexes (with children) before the rest.
    doomed.sort((a, b) => rank(a) - rank(b));
    return { doomed: doomed.map((node) => node.digest), restorable };
  }

  private async deleteManifests(repository: string, digests: readonly string[], touchedBefore: number, now: number): Promise<string[]> {
    const historySince = this.options.historyRetentionMs > 0 ? now - this.options.historyRetentionMs : undefined;
    const deleted: string[] = [];
    let pending = [...digests];
    // Repeat while a pass frees more: a subject goes once its last referrer has.
    while (pending.length > 0) {
      const gone = new Set<string>();
      for (let at = 0; at < pending.length; at += BATCH) {
        const batch = pending.slice(at, at + BATCH).map((digest) => ({ repository, digest }));
        for (const m of await this.metadata.deleteUntaggedManifests(batch, { touchedBefore, ...(historySince !== undefined ? { historySince } : {}) })) gone.add(m.digest);
      }
      if (gone.size === 0) break;
      deleted.push(...pending.filter((digest) => gone.has(digest)));
      pending = pending.filter((digest) => !gone.has(digest));
    }
    return deleted;
  }
}

function rank(node: ManifestNode): number {
  if (node.subject !== undefined) return 0;
  if (node.children.length > 0) return 1;
  return 2;
}

/** Which tags go and which stay, with the reason for each. */
function decideTags(
  graph: RepositoryGraph,
  nodes: Map<string, ManifestNode>,
  policy: RetentionPolicySpec,
  immutable: readonly ImmutableTagRule[],
  now: number,
): { deleted: TagDecision[]; kept: TagDecision[] } {
  const pulledAt = (digest: string): number | undefined => nodes.get(digest)?.pulledAt;
  const keep = new Map<string, string>();
  const protect = (tag: string, reason: string): void => {
    if (!keep.has(tag)) keep.set(tag, reason);
  };
  for (const t of graph.tagged) {
    const rule = immutableRuleFor(immutable, graph.name, t.name);
    if (rule) protect(t.name, `immutable (rule ${rule.id}: ${rule.repository}:${rule.tag})`);
    const pattern = policy.keepTags?.find((p) => globMatches(p, t.name));
    if (pattern !== undefined) protect(t.name, `matches keeptags ${pattern}`);
  }
  const newestFirst = (a: number, b: number) => b - a;
  if (policy.keepLastPushed !== undefined) {
    const byPush = [...graph.tagged].sort((a, b) => newestFirst(a.pushedAt, b.pushedAt) || (a.name < b.name ? -1 : 1));
    for (const t of byPush.slice(0, policy.keepLastPushed)) protect(t.name, `among the ${policy.keepLastPushed} most recently pushed`);
  }
  if (policy.keepLastPulled !== undefined) {
    // Never-pulled tags rank after every pulled one, newest push first.
    const byPull = [...graph.tagged].sort(
      (a, b) => newestFirst(pulledAt(a.digest) ?? -1, pulledAt(b.digest) ?? -1) || newestFirst(a.pushedAt, b.pushedAt) || (a.name < b.name ? -1 : 1),
    );
    for (const t of byPull.slice(0, policy.keepLastPulled)) protect(t.name, `among the ${policy.keepLastPulled} most recently pulled`);
  }
  const deleted: TagDecision[] = [];
  const kept: TagDecision[] = [];
  for (const t of graph.tagged) {
    const reasonKept = keep.get(t.name);
    if (reasonKept !== undefined) {
      kept.push({ tag: t.name, digest: t.digest, reason: reasonKept });
      continue;
    }
    const age = now - t.pushedAt;
    const lastPull = pulledAt(t.digest);
    const idle = now - (lastPull ?? t.pushedAt);
    const why: string[] = [];
    if (policy.olderThanMs !== undefined) {
      if (age < policy.olderThanMs) {
        kept.push({ tag: t.name, digest: t.digest, reason: `pushed ${formatAge(age)} ago, within olderthan ${formatRetentionDuration(policy.olderThanMs)}` });
        continue;
      }
      why.push(`pushed ${formatAge(age)} ago, older than ${formatRetentionDuration(policy.olderThanMs)}`);
    }
    if (policy.notPulledWithinMs !== undefined) {
      const event = lastPull === undefined ? 'never pulled, pushed' : 'last pulled';
      if (idle < policy.notPulledWithinMs) {
        kept.push({ tag: t.name, digest: t.digest, reason: `${event} ${formatAge(idle)} ago, within notpulledwithin ${formatRetentionDuration(policy.notPulledWithinMs)}` });
        continue;
      }
      why.push(`${event} ${formatAge(idle)} ago, not within ${formatRetentionDuration(policy.notPulledWithinMs)}`);
    }
    if (why.length === 0) why.push('not kept by any rule');
    deleted.push({ tag: t.name, digest: t.digest, reason: why.join('; ') });
  }
  return { deleted, kept };
}

function formatAge(ms: number): string {
  const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  for (const [unit, size] of units) if (ms >= size) return `${Math.floor(ms / size)}${unit}`;
  return `${Math.max(0, Math.round(ms))}ms`;
}

/** Thrown for a `retention` section that cannot be read; the message names the entry. */
export class RetentionConfigError extends Error {}

/** config.yml's `retention.policies`: a list of policies, in the order they apply. */
export function parseConfigRetentionPolicies(raw: unknown): RetentionPolicySpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new RetentionConfigError('retention.policies must be a list of {repositories, keeplastpushed, ...}');
  return raw.map((entry: unknown, i) => {
    try {
      return parseRetentionPolicy(entry, `retention.policies[${i}]: `);
    } catch (error) {
      throw new RetentionConfigError((error as Error).message);
    }
  });
}
