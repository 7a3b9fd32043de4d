import { RegistryError } from '../errors/index.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { Descriptor } from '../oci/manifest.js';
import { isValidMediaType } from '../oci/media-types.js';
import { checkRepositoryName } from './validation.js';
import type { Digest } from '../oci/digest.js';
import { SIGNATURE_ARTIFACT_TYPE, signatureTag, signedDigestOfTag } from '../signing/signature-manifest.js';

export interface ListRequest {
  /** The client's `n`; undefined when absent. */
  limit?: number;
  /** The client's `last`. */
  after?: string;
  /** `?signed=true` on a tag list: only tags whose image has a cosign signature (docs/signing.md). */
  signed?: boolean;
}

export interface ListPage {
  items: string[];
  /** Set when more may follow: the `last` for the next page. */
  next?: string;
}

export interface PaginationLimits {
  /** Largest page served; a larger `n` is clamped to it (the Link header leads on). */
  maxPage: number;
  /** Catalog page size when the client gives no `n` (registry:2's catalog.maxentries). */
  defaultCatalogPage: number;
}

/** Tag lists, the catalog and referrers: all answered from metadata by keyset pagination. */
export class DiscoveryService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly limits: PaginationLimits,
  ) {}

  /** One page of tags; with no `n`, the caller iterates allTags instead. Throws NAME_UNKNOWN. */
  async tags(repository: string, request: ListRequest): Promise<ListPage> {
    checkRepositoryName(repository);
    if (request.signed) {
      // Without keys the registry can only say that a signature is stored, not that it is valid;
      // a security.signatures policy answers this with verified signatures instead.
      const { signed: _signed, ...plain } = request;
      const hasSignature = async (tag: string) => {
        const digest = signedDigestOfTag(tag) === undefined ? (await this.metadata.getTaggedManifest(repository, tag))?.digest : undefined;
        if (digest === undefined) return false;
        if (await this.metadata.getTaggedManifest(repository, signatureTag(digest))) return true;
        return (await this.metadata.listReferrers(repository, digest, { artifactType: SIGNATURE_ARTIFACT_TYPE })).length > 0;
      };
      return filterTags((r) => this.tags(repository, r), plain, this.pageSize(request.limit ?? this.limits.maxPage), hasSignature);
    }
    const limit = this.pageSize(request.limit ?? this.limits.maxPage);
    const items = limit === 0 ? [] : await this.metadata.listTags(repository, this.page(request.after, limit + 1));
    if (items === undefined || (limit === 0 && !(await this.metadata.repositoryExists(repository)))) {
      throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    }
    return this.trim(items, limit);
  }

  /** Every tag after `after`, fetched a page at a time so memory stays flat however many there are. */
  async *allTags(repository: string, after?: string): AsyncGenerator<string[]> {
    let cursor = after;
    for (;;) {
      const page = await this.tags(repository, { limit: this.limits.maxPage, ...(cursor !== undefined ? { after: cursor } : {}) });
      yield page.items;
      if (page.next === undefined) return;
      cursor = page.next;
    }
  }

  /**
   * One page of repository names that hold at least one manifest; with `visible`, only the
   * names it accepts (the ones the caller may pull), reading on until the page is full.
   */
  async catalog(request: ListRequest, visible?: (repository: string) => boolean): Promise<ListPage> {
    const limit = this.pageSize(request.limit ?? this.limits.defaultCatalogPage);
    if (limit === 0) return { items: [] };
    if (!visible) return this.trim(await this.metadata.listRepositories(this.page(request.after, limit + 1)), limit);
    const items: string[] = [];
    let after = request.after;
    for (;;) {
      const batch = await this.metadata.listRepositories(this.page(after, Math.max(limit + 1, 100)));
      for (const name of batch) if (visible(name)) items.push(name);
      if (items.length > limit || batch.length === 0) break;
      after = batch[batch.length - 1];
      if (batch.length < Math.max(limit + 1, 100)) break;
    }
    return this.trim(items.slice(0, limit + 1), limit);
  }

  /** Manifests whose subject is `digest`, optionally only those of one artifactType. */
  async referrers(repository: string, digest: Digest, artifactType?: string): Promise<Descriptor[]> {
    checkRepositoryName(repository);
    if (artifactType !== undefined && !isValidMediaType(artifactType)) {
      throw new RegistryError('PARAMETER_INVALID', { message: 'artifactType is not a media type', detail: { artifactType } });
    }
    return this.metadata.listReferrers(repository, digest, artifactType === undefined ? {} : { artifactType });
  }

  private pageSize(requested: number): number {
    if (!Number.isSafeInteger(requested) || requested < 0) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n: requested } });
    }
    return Math.min(requested, this.limits.maxPage);
  }

  private page(after: string | undefined, limit: number): { after?: string; limit: number } {
    return after === undefined ? { limit } : { after, limit };
  }

  private trim(items: string[], limit: number): ListPage {
    if (items.length <= limit) return { items };
    const page = items.slice(0, limit);
    return { items: page, next: page[page.length - 1]! };
  }
}

/**
 * One page of the tags that `keep` accepts, reading pages of `list` until `limit` are found or the
 * tags run out. `next` is the last tag returned, so the following page starts after it.
 */
export async function filterTags(list: (request: ListRequest) => Promise<ListPage>, request: ListRequest, limit: number, keep: (tag: string) => Promise<boolean>): Promise<ListPage> {
  const items: string[] = [];
  if (limit === 0) return { items: (await list({ ...request, limit: 0 })).items };
  let after = request.after;
  for (;;) {
    const page = await list({ limit, ...(after !== undefined ? { after } : {}) });
    for (const tag of page.items) {
      if (items.length === limit) return { items, next: items[items.length - 1]! };
      if (await keep(tag)) items.push(tag);
    }
    if (page.next === undefined) return { items };
    if (items.length === limit) return { items, next: items[items.length - 1]! };
    after = page.next;
  }
}
