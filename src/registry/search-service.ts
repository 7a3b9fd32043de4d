import { RegistryError } from '../errors/index.js';
import type { MetadataStore, RepositoryProfile, RepositorySummary, TagDetail, TagDetailQuery } from '../metadata/metadata-store.js';
import { MAX_README_BYTES, SEARCH_RESULT_CAP } from '../metadata/repository-profile.js';

export { MAX_README_BYTES };
import { changeOptions, type RequestContext } from './context.js';
import { checkRepositoryName } from './validation.js';

export const DEFAULT_SEARCH_PAGE_SIZE = 25;
export const MAX_SEARCH_PAGE_SIZE = 100;

/** One result, in Docker Hub's v1 search shape. */
export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

/** A page of results, in Docker Hub's v1 search shape (what `docker search` and `podman search` read). */
export interface SearchPage {
  query: string;
  num_results: number;
  num_pages: number;
  page: number;
  page_size: number;
  results: SearchResult[];
}

export interface SearchRequest {
  query: string;
  /** 1-based. */
  page?: number;
  pageSize?: number;
  /** Which repositories the caller may see; absent: all. */
  visible?: (repository: string) => boolean;
  /** `signed=true`: only repositories with at least one signed tagged image (docs/search.md). */
  signed?: boolean;
}

/** Search, stars and READMEs over the metadata store (docs/search.md). */
export class SearchService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: {
      officialPrefixes: readonly string[];
      /** Whether a repository has a tag whose image is signed (the tag list's `signed=true`); needed for `signed` searches. */
      hasSignedTag?: (repository: string) => Promise<boolean>;
    },
  ) {}

  isOfficial(repository: string): boolean {
    return this.options.officialPrefixes.some((prefix) => repository.startsWith(prefix));
  }

  /** Matches on name and description, best first, only what `visible` accepts. */
  async search(request: SearchRequest): Promise<SearchPage> {
    const pageSize = Math.min(Math.max(1, request.pageSize ?? DEFAULT_SEARCH_PAGE_SIZE), MAX_SEARCH_PAGE_SIZE);
    const page = Math.max(1, request.page ?? 1);
    const query = request.query.trim();
    const found = request.signed
      ? await this.signedMatches(query, (page - 1) * pageSize, pageSize, request.visible)
      : await this.metadata.searchRepositories({
          text: query,
          offset: (page - 1) * pageSize,
          limit: pageSize,
          ...(request.visible ? { visible: request.visible } : {}),
        });
    return {
      query,
      num_results: found.total,
      num_pages: Math.ceil(found.total / pageSize),
      page,
      page_size: pageSize,
      results: found.repositories.map((match: RepositorySummary) => ({
        name: match.name,
        description: match.description ?? '',
        star_count: match.stars,
        is_official: this.isOfficial(match.name),
        is_automated: false,
      })),
    };
  }

  /**
   * The matches (at most SEARCH_RESULT_CAP, as for any search) that have a signed tag, then the
   * page of them: every match is checked so that the total is right.
   */
  private async signedMatches(text: string, offset: number, limit: number, visible?: (repository: string) => boolean): Promise<{ total: number; repositories: RepositorySummary[] }> {
    const hasSignedTag = this.options.hasSignedTag;
    if (!hasSignedTag) throw new RegistryError('UNSUPPORTED', { message: 'this registry cannot tell signed repositories apart' });
    const all = await this.metadata.searchRepositories({ text, offset: 0, limit: SEARCH_RESULT_CAP, ...(visible ? { visible } : {}) });
    const signed: RepositorySummary[] = [];
    for (const match of all.repositories) {
      try {
        if (await hasSignedTag(match.name)) signed.push(match);
      } catch (error) {
        // Deleted since it matched: not a result.
        if (!(error instanceof RegistryError) || error.code !== 'NAME_UNKNOWN') throw error;
      }
    }
    return { total: signed.length, repositories: signed.slice(offset, offset + limit) };
  }

  /** NAME_UNKNOWN when the repository does not exist. */
  async profile(repository: string): Promise<RepositoryProfile> {
    checkRepositoryName(repository);
    const profile = await this.metadata.repositoryProfile(repository);
    if (!profile) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    return profile;
  }

  /** Sets the README (markdown), or removes it with an empty text. */
  async setReadme(repository: string, readme: string, context: RequestContext = {}): Promise<void> {
    checkRepositoryName(repository);
    if (Buffer.byteLength(readme) > MAX_README_BYTES) {
      throw new RegistryError('REQUEST_TOO_LARGE', { message: `a README may hold at most ${MAX_README_BYTES} bytes`, detail: { limit: MAX_README_BYTES } });
    }
    const text = readme.trim() === '' ? undefined : readme;
    if (!(await this.metadata.setReadme(repository, text, changeOptions(context)))) {
      throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    }
  }

  /** Stars (or unstars) for the signed-in caller; DENIED for anonymous callers. */
  async star(repository: string, starred: boolean, context: RequestContext): Promise<{ starred: boolean; stars: number }> {
    checkRepositoryName(repository);
    if (context.actor === undefined) throw new RegistryError('DENIED', { message: 'sign in to star repositories' });
    if ((await this.metadata.setStar(repository, context.actor, starred)) === undefined) {
      throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    }
    return { starred, stars: (await this.metadata.repositoryProfile(repository))?.stars ?? 0 };
  }

  async starredBy(user: string | undefined, repositories: readonly string[]): Promise<Set<string>> {
    return user === undefined ? new Set() : this.metadata.starredBy(user, repositories);
  }

  /** NAME_UNKNOWN when the repository does not exist. */
  async tagDetails(repository: string, query: TagDetailQuery): Promise<{ total: number; tags: TagDetail[] }> {
    checkRepositoryName(repository);
    const page = await this.metadata.listTagDetails(repository, query);
    if (!page) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    return page;
  }
}
