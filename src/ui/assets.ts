/**
 * The UI's only assets, served from memory under `<ui.path>_/`: no build step, nothing fetched
 * from elsewhere. The pages work without the script (forms post, links page and sort); it only
 * adds copy buttons and a confirmation before deleting.
 */
export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --muted: #57606a; --line: #d0d7de; --accent: #0a58ca; --soft: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --line: #30363d; --accent: #6cb6ff; --soft: #161b22; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); text-decoration: underline; }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .6rem 1rem; border-bottom: 2px solid var(--line); }
header.top .brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; color: var(--fg); }
header.top form.search { flex: 1 1 14rem; display: flex; gap: .4rem; }
header.top .who { margin-left: auto; display: flex; gap: .5rem; align-items: center; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .2rem 0 .6rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid var(--line); }
input[type=search], input[type=text], input[type=password] { font: inherit; padding: .35rem .5rem; border: 1px solid var(--muted); border-radius: 4px; background: var(--bg); color: var(--fg); min-width: 0; flex: 1; }
button, .button { font: inherit; padding: .3rem .7rem; border: 1px solid var(--muted); border-radius: 4px; background: var(--soft); color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button.danger { border-style: dashed; font-weight: 600; }
form.inline { display: inline; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; overflow-wrap: anywhere; }
pre { background: var(--soft); padding: .6rem; overflow-x: auto; border: 1px solid var(--line); }
.muted { color: var(--muted); }
.badge { display: inline-block; border: 1px solid var(--muted); border-radius: 3px; padding: 0 .3rem; font-size: .8rem; }
.pager { display: flex; gap: 1rem; align-items: center; margin: .8rem 0; flex-wrap: wrap; }
.pull { display: flex; gap: .4rem; align-items: center; margin: .3rem 0; }
.pull input { font-family: ui-monospace, monospace; font-size: .85rem; }
.notice { border: 2px solid var(--muted); padding: .5rem .8rem; margin: .8rem 0; }
.notice.error { border-style: dashed; font-weight: 600; }
.readme { border: 1px solid var(--line); padding: .3rem 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
ol.timeline { list-style: none; padding: 0; border-left: 3px solid var(--line); }
ol.timeline li { padding: .3rem 0 .6rem .9rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: .5rem; background: var(--bg); padding: .3rem; }
@media (max-width: 40rem) { .wide { display: none; } main { padding: .6rem; } }
`;

export const SCRIPT = `
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-copy]');
  if (!button) return;
  const text = button.getAttribute('data-copy');
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const field = document.getElementById(button.getAttribute('aria-controls'));
    if (field) { field.select(); document.execCommand('copy'); }
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
});
document.addEventListener('submit', (event) => {
  const question = event.target.getAttribute('data-confirm');
  if (question && !window.confirm(question)) event.preventDefault();
});
`;
