// Summarise an http-cache-tests results file (the JSON `npm run cli` prints) the way
// cache-tests.fyi counts it: required and optional ("optimal") tests, passed / failed /
// skipped behind a failed dependency; "check" tests are informational and left out.
//
//   node summary.mjs PACKAGE_DIR RESULTS.json [--failures] [--baseline FILE] [--write-baseline FILE]
//
// --baseline: exit 1 if a required test listed in FILE (one id a line) no longer passes.
// --write-baseline: write the required tests that pass now to FILE.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [packageDir, resultsFile, ...flags] = process.argv.slice(2)
const load = (rel) => import(pathToFileURL(path.join(packageDir, rel)).href)
const suites = (await load('tests/index.mjs')).default
const surrogate = (await load('tests/surrogate-control.mjs')).default
suites.push(surrogate)
const surrogateIds = new Set(surrogate.tests.map(test => test.id))
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))

const tests = new Map()
for (const suite of suites) for (const test of suite.tests) tests.set(test.id, test)

// lib/display.mjs's determineTestResult, without the browser parts.
function verdict (id) {
  const test = tests.get(id)
  const result = results[id]
  if (result === undefined) return 'untested'
  for (const dep of test.depends_on || []) {
    if (!['pass', 'yes'].includes(verdict(dep))) return 'dependency'
  }
  if (Array.isArray(result) && result[0] === 'Setup') return 'setup'
  if (result === false) return 'harness'
  const kind = test.kind || 'required'
  if (kind === 'check') return result === true ? 'yes' : 'no'
  return result === true ? 'pass' : 'fail'
}

// cache-tests.fyi shows the Surrogate-Control suite apart (CDNs): counted both ways here.
const counts = {}
const core = {}
const failures = []
for (const [id, test] of tests) {
  const kind = test.kind || 'required'
  const v = verdict(id)
  if (kind === 'check' || v === 'untested') continue
  counts[kind] = counts[kind] || {}
  counts[kind][v] = (counts[kind][v] || 0) + 1
  if (!surrogateIds.has(id)) {
    core[kind] = core[kind] || {}
    core[kind][v] = (core[kind][v] || 0) + 1
  }
  if (v !== 'pass' && v !== 'dependency') {
    const detail = Array.isArray(results[id]) ? results[id].slice(0, 2).join(': ') : ''
    failures.push(`${kind === 'required' ? 'REQUIRED' : 'optional'} ${v} ${id}: ${detail}`)
  }
}
for (const [label, table] of [['', counts], [' (without Surrogate-Control)', core]]) {
  for (const kind of ['required', 'optimal']) {
    const c = table[kind] || {}
    const total = Object.values(c).reduce((a, b) => a + b, 0)
    const others = Object.entries(c).filter(([k]) => k !== 'pass' && k !== 'fail')
    console.log(`${kind === 'optimal' ? 'optional' : kind}${label}: ${c.pass || 0} of ${total} ` +
      `passed, ${c.fail || 0} failed` + others.map(([k, n]) => `, ${n} ${k}`).join(''))
  }
}
if (flags.includes('--failures')) failures.sort().forEach(line => console.log(line))

const option = (name) => {
  const at = flags.indexOf(name)
  return at >= 0 ? flags[at + 1] : undefined
}
const passing = [...tests].filter(([id, test]) =>
  (test.kind || 'required') === 'required' && verdict(id) === 'pass').map(([id]) => id).sort()
const writeTo = option('--write-baseline')
if (writeTo) fs.writeFileSync(writeTo, passing.join('\n') + '\n')
const baseline = option('--baseline')
if (baseline) {
  const now = new Set(passing)
  const lost = fs.readFileSync(baseline, 'utf8').split('\n').filter(id => id && !now.has(id))
  for (const id of lost) console.log(`REGRESSION: required test ${id} passed before and does not now`)
  if (lost.length) process.exit(1)
  console.log('no required test that passed before fails now')
}
