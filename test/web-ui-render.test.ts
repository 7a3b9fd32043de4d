import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { html, trusted } from '../src/ui/html.js';
import { renderMarkdown } from '../src/ui/markdown.js';
import { SessionKeys, newSession } from '../src/ui/session.js';

describe('web UI rendering, in process', () => {
  it('escapes every interpolated value unless it is already HTML', () => {
    const hostile = `"><script>alert(1)</script><a href='javascript:x'>`;
    const page = html`<p title="${hostile}">${hostile}${[hostile, 1, null, false]}</p>${trusted('<b>kept</b>')}`.value;
    assert.ok(!page.includes('<script>') && !page.includes(`'javascript`));
    assert.equal(page.match(/&lt;script&gt;/g)?.length, 3);
    assert.ok(page.endsWith('<b>kept</b>'));
  });

  it('renders markdown and keeps none of its raw HTML that could act', async () => {
    const out = (await renderMarkdown(
      '# Title\n\n<script>alert(1)</script><img src=x onerror=alert(1)><iframe src="https://example.com"></iframe>\n\n' +
        '[ok](https://example.com) [bad](javascript:alert(1)) <a href="JaVaScRiPt:alert(1)">x</a> <p style="color:red" onclick="x()">styled</p>\n\n| a |\n|---|\n| b |\n',
    )).value;
    for (const forbidden of ['<script', '<img', '<iframe', 'onerror', 'onclick', 'style=', 'javascript:', 'JaVaScRiPt']) assert.ok(!out.toLowerCase().includes(forbidden.toLowerCase()), `${forbidden} in ${out}`);
    assert.match(out, /<h2>Title<\/h2>/);
    assert.match(out, /<a href="https:\/\/example.com" rel="nofollow noopener noreferrer">ok<\/a>/);
    assert.match(out, /<table>/);
  });

  it('signs sessions: a changed, forged or expired cookie is no session; CSRF tokens belong to one session', () => {
    const keys = SessionKeys.ephemeral();
    const session = newSession('alice');
    const sealed = keys.seal(session);
    assert.deepEqual(keys.open(sealed), session);
    const [body, mac] = sealed.split('.') as [string, string];
    const forged = Buffer.from(JSON.stringify({ ...session, user: 'root' })).toString('base64url');
    assert.equal(keys.open(`${forged}.${mac}`), undefined);
    assert.equal(keys.open(`${body}.${mac.slice(1)}x`), undefined);
    assert.equal(SessionKeys.ephemeral().open(sealed), undefined, 'another key');
    assert.equal(keys.open(keys.seal({ ...session, expires: Date.now() - 1 })), undefined);
    assert.equal(keys.checkCsrf(session, keys.csrfToken(session)), true);
    assert.equal(keys.checkCsrf(newSession('alice'), keys.csrfToken(session)), false);
    assert.equal(keys.checkCsrf(session, undefined), false);
  });
});
