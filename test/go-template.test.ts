import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GoTemplate, TemplateError } from '../src/cli/go-template.js';
import { renderFormat } from '../src/cli/output.js';

/** What Go's text/template prints for these templates (checked against Go's documented behaviour). */
const run = (template: string, data: unknown) => new GoTemplate(template).execute(data);

const image = {
  Id: 'sha256:abc',
  RepoTags: ['app:1', 'app:latest'],
  Size: 1234,
  Config: { Cmd: ['/bin/sh', '-c', 'echo hi'], Labels: { 'org.b': 'two', 'org.a': 'one' }, Env: [] as string[] },
  Empty: '',
};

test('fields, nested fields and Go rendering of slices, maps and missing keys', () => {
  assert.equal(run('{{.Id}}', image), 'sha256:abc');
  assert.equal(run('{{.Config.Cmd}}', image), '[/bin/sh -c echo hi]');
  assert.equal(run('{{.Config.Labels}}', image), 'map[org.a:one org.b:two]');
  assert.equal(run('{{.Config.Env}}', image), '[]');
  assert.equal(run('{{.Nope}}', image), '<no value>');
  assert.equal(run('{{.}}', ['a', 'b']), '[a b]');
  assert.equal(run('{{.Size}} bytes', image), '1234 bytes');
});

test('range over slices and maps, with variables, else, and $', () => {
  assert.equal(run('{{range .RepoTags}}{{.}} {{end}}', image), 'app:1 app:latest ');
  assert.equal(run('{{range $i, $t := .RepoTags}}{{$i}}={{$t}};{{end}}', image), '0=app:1;1=app:latest;');
  assert.equal(run('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}\n{{end}}', image), 'org.a=one\norg.b=two\n');
  assert.equal(run('{{range .Config.Env}}x{{else}}none{{end}}', image), 'none');
  assert.equal(run('{{range .RepoTags}}{{$.Id}} {{end}}', image), 'sha256:abc sha256:abc ');
});

test('if, else if, else, with; truth as Go sees it', () => {
  assert.equal(run('{{if .Empty}}yes{{else}}no{{end}}', image), 'no');
  assert.equal(run('{{if .Config.Env}}yes{{else if .RepoTags}}tags{{else}}no{{end}}', image), 'tags');
  assert.equal(run('{{if eq .Size 1234}}big{{end}}', image), 'big');
  assert.equal(run('{{if and .RepoTags (not .Empty)}}ok{{end}}', image), 'ok');
  assert.equal(run('{{if or .Empty .Id}}{{or .Empty .Id}}{{end}}', image), 'sha256:abc');
  assert.equal(run('{{with .Config}}{{.Cmd}}{{end}}', image), '[/bin/sh -c echo hi]');
  assert.equal(run('{{with .Empty}}x{{else}}empty{{end}}', image), 'empty');
  assert.equal(run('{{if ne .Id "x"}}differs{{end}}', image), 'differs');
  assert.equal(run('{{if gt (len .RepoTags) 1}}many{{end}}', image), 'many');
});

test('functions, pipelines, parentheses, trim markers and comments', () => {
  assert.equal(run('{{json .Config.Cmd}}', image), '["/bin/sh","-c","echo hi"]');
  assert.equal(run('{{json .}}', { A: 1, B: 'x<y' }), '{"A":1,"B":"x<y"}');
  assert.equal(run('{{index .RepoTags 1}}', image), 'app:latest');
  assert.equal(run('{{index .Config.Labels "org.a"}}', image), 'one');
  assert.equal(run('{{join .RepoTags ", "}}', image), 'app:1, app:latest');
  assert.equal(run('{{.Id | upper}}', image), 'SHA256:ABC');
  assert.equal(run('{{len .RepoTags}}', image), '2');
  assert.equal(run('{{(index .RepoTags 0) | lower}}', image), 'app:1');
  assert.equal(run('{{printf "%-6s|%5d|%q" "ab" 42 "x"}}', {}), 'ab    |   42|"x"');
  assert.equal(run('{{print "a" "b"}} {{print 1 2}}', {}), 'ab 1 2');
  assert.equal(run('a  {{- .Id -}}  b', image), 'asha256:abcb');
  assert.equal(run('a{{/* a comment */}}b', image), 'ab');
  assert.equal(run('{{$n := len .RepoTags}}{{$n}}', image), '2');
  assert.equal(run('{{split "a:b" ":"}}', {}), '[a b]');
  assert.equal(run('{{slice .Id 0 6}}', image), 'sha256');
});

test('mistakes are reported as template errors, not crashes', () => {
  assert.throws(() => run('{{.Id', image), TemplateError);
  assert.throws(() => run('{{if .Id}}x', image), /no \{\{end\}\}/);
  assert.throws(() => run('{{nosuch .Id}}', image), /function "nosuch" not defined/);
  assert.throws(() => run('{{end}}', image), TemplateError);
  assert.throws(() => run('{{.RepoTags.Name}}', image), /can't evaluate field Name/);
  assert.throws(() => run('{{$x}}', image), /undefined variable: \$x/);
});

test('table: a header row from the field names and columns aligned as docker aligns them', () => {
  const rows = [
    { Repository: 'localhost:5000/app', Tag: 'v1', Size: '1.2MB' },
    { Repository: 'x', Tag: 'latest', Size: '3kB' },
  ];
  const out = renderFormat('table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}', rows, { Repository: 'REPOSITORY' });
  assert.equal(
    out,
    ['REPOSITORY           TAG       SIZE', 'localhost:5000/app   v1        1.2MB', 'x                    latest    3kB', ''].join('\n'),
  );
  assert.equal(renderFormat('{{.Tag}}', rows), 'v1\nlatest\n');
});
