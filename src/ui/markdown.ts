import { Marked } from 'marked';
import sanitizeHtml from 'sanitize-html';
import { trusted, type Html } from './html.js';

const marked = new Marked({ gfm: true, async: false });

/**
 * A README's markdown as HTML that cannot run anything: marked renders it (raw HTML included, as
 * markdown allows), then sanitize-html keeps only presentational elements, drops every
 * attribute but a few, and allows links only to http(s) and mailto. Images are dropped: a page
 * loads nothing from outside the registry.
 */
export function renderMarkdown(markdown: string): Html {
  const rendered = marked.parse(markdown) as string;
  const clean = sanitizeHtml(rendered, {
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
  return trusted(clean);
}
