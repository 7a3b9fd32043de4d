import { trusted, type Html } from './html.js';

type Renderer = (markdown: string) => string;

/**
 * marked and sanitize-html cost every serving process a few MiB of heap from the start; most
 * never render a README, so they load with the first one.
 */
let renderer: Promise<Renderer> | undefined;

async function loadRenderer(): Promise<Renderer> {
  const [{ Marked }, { default: sanitizeHtml }] = await Promise.all([import('marked'), import('sanitize-html')]);
  const marked = new Marked({ gfm: true, async: false });
  return (markdown) =>
    sanitizeHtml(marked.parse(markdown) as string, {
      allowedTags: ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'p', 'a', 'ul', 'ol', 'li', 'blockquote', 'pre', 'code', 'em', 'strong', 'del', 'hr', 'br', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'kbd', 'sup', 'sub'],
      allowedAttributes: { a: ['href', 'title', 'rel'], th: ['align'], td: ['align'] },
      allowedSchemes: ['http', 'https', 'mailto'],
      allowProtocolRelative: false,
      disallowedTagsMode: 'discard',
      transformTags: {
        a: sanitizeHtml.simpleTransform('a', { rel: 'nofollow noopener noreferrer' }),
        h1: 'h2',
      },
    });
}

/**
 * A README's markdown as HTML that cannot run anything: marked renders it (raw HTML included, as
 * markdown allows), then sanitize-html keeps only presentational elements, drops every
 * attribute but a few, and allows links only to http(s) and mailto. Images are dropped: a page
 * loads nothing from outside the registry.
 */
export async function renderMarkdown(markdown: string): Promise<Html> {
  renderer ??= loadRenderer().catch((error: unknown) => {
    renderer = undefined;
    throw error;
  });
  return trusted((await renderer)(markdown));
}
