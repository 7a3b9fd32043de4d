/** The longest description search shows (Docker Hub's short descriptions are about this long). */
export const MAX_DESCRIPTION_CHARS = 200;

/** The largest README accepted, in bytes of UTF-8 (Docker Hub allows 25,000 characters): pages stay under 100 KB. */
export const MAX_README_BYTES = 25_000;

/**
 * A README's first paragraph of prose as plain text, for a repository whose images carry no
 * description: headings, images, badges, HTML and code fences are skipped, link text kept.
 * Undefined when there is no such paragraph.
 */
export function readmeSummary(markdown: string): string | undefined {
  const paragraphs = markdown.replace(/\r\n?/g, '\n').replace(/```[\s\S]*?(```|$)/g, '\n\n').split(/\n\s*\n/);
  for (const raw of paragraphs) {
    const text = raw
      .split('\n')
      .filter((line) => !/^\s*(#|>|\||<|[-*_]{3,}\s*$)/.test(line))
      .join(' ')
      .replace(/!\[[^\]]*\]\([^)]*\)/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]*>/g, '')
      .replace(/[*_`~]/g, '')
      .replace(/\s+/g, ' ')
      .trim();
    if (text !== '') return clip(text);
  }
  return undefined;
}

/** A description as stored: whitespace collapsed, clipped; undefined when empty. */
export function normalizeDescription(text: string | undefined | null): string | undefined {
  if (text === undefined || text === null) return undefined;
  const collapsed = text.replace(/\s+/g, ' ').trim();
  return collapsed === '' ? undefined : clip(collapsed);
}

function clip(text: string): string {
  return text.length <= MAX_DESCRIPTION_CHARS ? text : `${text.slice(0, MAX_DESCRIPTION_CHARS - 1)}…`;
}

/**
 * The FTS query for what a user typed: every word as a quoted prefix, all required. Undefined
 * when nothing searchable is left (only punctuation).
 */
export function searchWords(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((word) => word !== '').slice(0, 16);
}
