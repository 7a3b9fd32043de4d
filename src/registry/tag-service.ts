import { RegistryError } from '../errors/index.js';
import {
  checkImmutableTagPattern,
  parseImmutableTagRule,
  type ImmutableTagPattern,
  type ImmutableTagRule,
} from '../metadata/immutable-tag-rules.js';
import type { MetadataStore, TagEvent } from '../metadata/metadata-store.js';
import { isDigest } from '../oci/digest.js';
import { changeOptions, type RequestContext } from './context.js';
import type { EventSink } from './events.js';
import { checkRepositoryName, checkTag } from './validation.js';

/** The most history entries one request returns (and a restore `--at` looks through). */
export const MAX_HISTORY = 10_000;

/** Where a restore points the tag: a digest, or wherever the tag pointed at a moment. */
export type RestoreTarget = { digest: string } | { at: number };

export interface RestoreResult {
  tag: string;
  digest: string;
  previous?: string;
  /** False when the tag already pointed there. */
  moved: boolean;
}

/** Tag history, restores and immutable-tag rules, over the metadata store that enforces them. */
export class TagService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: { emit?: EventSink } = {},
  ) {}

  /** The tag's moves, newest first. Throws NAME_UNKNOWN when the repository does not exist. */
  async history(repository: string, tag: string, limit = 100): Promise<TagEvent[]> {
    checkRepositoryName(repository);
    checkTag(tag);
    if (!(await this.metadata.repositoryExists(repository))) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    return this.metadata.tagHistory(repository, tag, Math.min(Math.max(1, limit), MAX_HISTORY));
  }

  /**
   * Points the tag back at a manifest of the repository: `digest`, or the one the tag pointed at
   * at `at` (ms since epoch). MANIFEST_UNKNOWN when the manifest is gone (or the tag did not
   * exist then); DENIED when an immutable-tag rule forbids the move.
   */
  async restore(repository: string, tag: string, target: RestoreTarget, context: RequestContext = {}): Promise<RestoreResult> {
    checkRepositoryName(repository);
    checkTag(tag);
    let digest: string;
    if ('digest' in target) {
      if (!isDigest(target.digest)) throw new RegistryError('DIGEST_INVALID', { message: `"${target.digest}" is not a digest`, detail: { digest: target.digest } });
      digest = target.digest;
    } else {
      const events = await this.metadata.tagHistory(repository, tag, MAX_HISTORY);
      // Newest first: the first move at or before the moment is where the tag pointed then.
      const then = events.find((event) => event.at <= target.at);
      if (!then || then.action === 'delete' || then.digest === undefined) {
        throw new RegistryError('MANIFEST_UNKNOWN', {
          message: `tag ${tag} of ${repository} pointed at nothing at ${new Date(target.at).toISOString()}`,
          detail: { tag, at: new Date(target.at).toISOString() },
        });
      }
      digest = then.digest;
    }
    const actor = context.actor ? { actor: context.actor } : {};
    const { previous, moved } = await this.metadata.moveTag(repository, tag, digest, changeOptions(context));
    if (moved) this.options.emit?.({ action: 'tag.move', repository, tag, digest, ...(previous ? { previous } : {}), ...actor });
    return { tag, digest, moved, ...(previous !== undefined ? { previous } : {}) };
  }

  listImmutableRules(): Promise<ImmutableTagRule[]> {
    return this.metadata.listImmutableTagRules();
  }

  /** Adds a rule from its patterns (`{repository, tag}`) or its `REPO:TAG` text; INVALID_REQUEST when malformed. */
  addImmutableRule(input: unknown, context: RequestContext = {}): Promise<ImmutableTagRule> {
    const pattern = patternOf(input);
    return this.metadata.addImmutableTagRule(pattern, context.actor ? { actor: context.actor } : {});
  }

  /** Removes an API rule. NOT_FOUND when there is none with that id; DENIED for a config rule. */
  async removeImmutableRule(id: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id < 1) throw new RegistryError('NOT_FOUND', { message: 'no such immutable-tag rule', detail: { id } });
    if (await this.metadata.removeImmutableTagRule(id)) return;
    const rule = (await this.metadata.listImmutableTagRules()).find((r) => r.id === id);
    if (rule?.source === 'config') {
      throw new RegistryError('DENIED', { message: `immutable-tag rule ${id} comes from config.yml (immutable.rules); change it there`, detail: { id } });
    }
    throw new RegistryError('NOT_FOUND', { message: 'no such immutable-tag rule', detail: { id } });
  }

  /** At start-up: config.yml's `immutable.rules` replace the config rules in the store. */
  async applyConfigRules(texts: readonly string[]): Promise<void> {
    const patterns = texts.map((text) => {
      try {
        return parseImmutableTagRule(text);
      } catch (error) {
        throw new Error(`immutable.rules: "${text}": ${(error as Error).message}`);
      }
    });
    await this.metadata.replaceConfigImmutableTagRules(patterns);
  }
}

function patternOf(input: unknown): ImmutableTagPattern {
  if (typeof input === 'string') return parseImmutableTagRule(input);
  if (typeof input === 'object' && input !== null) {
    const { repository, tag } = input as Record<string, unknown>;
    return checkImmutableTagPattern({ repository: repository as string, tag: tag as string });
  }
  throw new RegistryError('INVALID_REQUEST', { message: 'expected {"repository": PATTERN, "tag": PATTERN}' });
}
