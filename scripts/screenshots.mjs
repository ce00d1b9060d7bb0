// Drives the Dagster UI of a freshly demoed Helix instance and writes the PNGs that docs/ui.md
// embeds. Run through scripts/screenshots.sh (which starts the servers); NOT run in CI.
//
//   node scripts/screenshots.mjs http://127.0.0.1:PORT docs/img/ui
//
// Uses playwright-core with the machine's Chromium ($CHROMIUM, default /usr/bin/chromium): no
// browser is ever downloaded. Every step waits for the content it shows (a selector or a text),
// never for a fixed time alone; the short pauses after that only let animations settle.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [baseArg, outArg] = process.argv.slice(2);
if (!baseArg || !outArg) {
  console.error('usage: node scripts/screenshots.mjs <base url> <output dir>');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const OUT = path.resolve(outArg);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const VIEWPORT = { width: 1400, height: 900 };
const TIMEOUT = 60_000; // the first page of a cold webserver can take a while
const LOCATION = 'helix_pipelines';

fs.mkdirSync(OUT, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'helix-chromium-'));
const started = Date.now();
const problems = []; // console errors and failed steps, printed at the end

const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: VIEWPORT,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
context.setDefaultTimeout(TIMEOUT);
// Before any page script: the "Join the Dagster community" dialog counts as seen, and the main
// navigation is collapsed to icons so the pages get the width.
await context.addInitScript(() => {
  try {
    localStorage.setItem('communityNux', '"1"');
    localStorage.setItem('dagster-nav-collapsed', 'true');
  } catch {}
});
const page = context.pages()[0] ?? (await context.newPage());
page.on('console', (m) => {
  if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text().slice(0, 300)}`);
});
page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${String(e).slice(0, 300)}`));

const settle = (ms = 600) => page.waitForTimeout(ms);

async function open(route, ready) {
  await page.goto(BASE + route, { waitUntil: 'networkidle' });
  const skip = page.getByRole('button', { name: 'Skip', exact: true });
  if (await skip.isVisible().catch(() => false)) await skip.click();
  if (ready) await ready();
}

async function save(name, what) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  const kb = Math.round(fs.statSync(file).size / 1024);
  console.log(`  ${name}.png (${kb} KB): ${what}`);
}

// The picture inside an open metadata dialog ("[Show Markdown]"), decoded and laid out.
async function dialogPicture() {
  const img = page.locator('[role=dialog] img').first();
  await img.waitFor();
  await page.waitForFunction(() => {
    const i = document.querySelector('[role=dialog] img');
    return i && i.complete && i.naturalWidth > 0;
  });
  return img;
}

const visibleText = (text) => page.getByText(text, { exact: true }).filter({ visible: true });

const shots = [
  {
    name: 'lineage',
    what: 'global asset lineage, every group expanded',
    async run() {
      await open('/asset-groups', () => page.getByText('Global asset lineage').waitFor());
      await page.locator('foreignObject').first().waitFor();
      // the graph's own settings button (the navigation's, first, has the same name)
      await page.getByRole('button', { name: 'settings', exact: true }).last().click();
      const expand = page.getByRole('menuitem', { name: /Expand all groups/ });
      if (await expand.isVisible().catch(() => false)) await expand.click();
      else await page.keyboard.press('Escape'); // already expanded
      await visibleText('executor_decisions').first().waitFor();
      // Each node's colour is its asset health, which loads after the graph (pale while it
      // does): wait until no node is loading and the colours have held for a few seconds.
      const colours = () =>
        page.evaluate(() =>
          [...document.querySelectorAll('[class*=minimalAssetNodeBox]')]
            .map((b) => `${b.textContent}=${(b.getAttribute('style') || '').match(/--minimal-bg:\s*var\(--color-background-([a-z-]+)/)?.[1] ?? '?'}`)
            .join(' '),
        );
      let last = '';
      let steady = 0;
      for (let i = 0; i < 60 && steady < 3; i += 1) {
        const now = await colours();
        steady = now && now === last && !now.includes('=light') ? steady + 1 : 0;
        last = now;
        await settle(1000);
      }
      console.log(`    node colours: ${last}`);
      // Hide the asset tree on the left so the graph gets the width, zoom in one step, and
      // centre the graph in what is left.
      const tree = page.locator('button:has([aria-label="panel_show_right"])');
      if (await tree.isVisible().catch(() => false)) await tree.click();
      await settle();
      await page.locator('button:has([aria-label="zoom_in"])').click();
      await settle();
      const box = await page.evaluate(() => {
        const rects = [...document.querySelectorAll('foreignObject')].map((f) => f.getBoundingClientRect());
        return {
          left: Math.min(...rects.map((r) => r.left)),
          right: Math.max(...rects.map((r) => r.right)),
          top: Math.min(...rects.map((r) => r.top)),
          bottom: Math.max(...rects.map((r) => r.bottom)),
        };
      });
      const canvas = { left: 70, right: VIEWPORT.width - 60, top: 110, bottom: VIEWPORT.height };
      const dx = (canvas.left + canvas.right) / 2 - (box.left + box.right) / 2;
      const dy = (canvas.top + canvas.bottom) / 2 - (box.top + box.bottom) / 2;
      const start = { x: 100, y: VIEWPORT.height - 20 }; // an empty corner of the canvas
      await page.mouse.move(start.x, start.y);
      await page.mouse.down();
      await page.mouse.move(start.x + dx, start.y + dy, { steps: 12 });
      await page.mouse.up();
      await settle();
    },
  },
  {
    name: 'normalized_heatmaps_partition',
    what: 'normalized_heatmaps, Partitions tab, partition 3|24h: its metadata',
    async run() {
      await open(`/assets/normalized_heatmaps?view=partitions&partition=${encodeURIComponent('3|24h')}`, () =>
        page.getByText('snapshots_normalized').first().waitFor(),
      );
      await page.getByText('[Show Markdown]').first().waitFor();
      await settle();
    },
  },
  {
    name: 'normalized_heatmaps_preview',
    what: 'normalized_heatmaps 3|24h: the preview picture (model 3: no time axis)',
    async run() {
      // same page as above: the preview opens from its "[Show Markdown]" row
      await page.getByText('[Show Markdown]').first().click();
      await dialogPicture();
      await settle();
    },
  },
  {
    name: 'normalized_heatmaps_preview_model2',
    what: 'normalized_heatmaps 2|24h: a preview with its time axis and candle closes',
    async run() {
      await open(`/assets/normalized_heatmaps?view=partitions&partition=${encodeURIComponent('2|24h')}`, () =>
        page.getByText('[Show Markdown]').first().waitFor(),
      );
      await page.getByText('[Show Markdown]').first().click();
      await dialogPicture();
      await settle();
    },
  },
  {
    name: 'backfill',
    what: 'liquidation_heatmaps, Materialize…: models 1, 2 x ranges 12h, 180d = 4 partitions (not launched)',
    async run() {
      await open('/assets/liquidation_heatmaps', () => page.getByText('Latest materialization').first().waitFor());
      await page.getByRole('button', { name: /Materialize/ }).first().click();
      // the four heatmap assets are one step: Dagster asks to confirm the whole multi-asset
      const confirm = page.getByRole('button', { name: 'Confirm', exact: true });
      await confirm.or(page.getByText('Launch runs to materialize')).first().waitFor();
      if (await confirm.isVisible().catch(() => false)) await confirm.click();
      await page.getByText('Launch runs to materialize').waitFor();
      // each dimension's picker shows this placeholder until something is chosen in it
      const choose = async (keys) => {
        await page.getByText('Select a partition or create one').first().click();
        await page.getByText('Select all', { exact: false }).filter({ visible: true }).first().waitFor();
        for (const key of keys) await visibleText(key).last().click();
        await page.keyboard.press('Escape');
        await settle(300);
      };
      await choose(['1', '2']);
      await choose(['12h', '180d']);
      await page.getByText('4 partitions').first().waitFor();
      await settle();
    },
  },
  {
    name: 'check_partitions',
    what: 'liquidation_heatmaps, Checks: heatmaps_universe_coverage, Partitions tab, 3|24h selected',
    async run() {
      await open('/assets/liquidation_heatmaps?view=checks&checkDetail=heatmaps_universe_coverage', () =>
        page.getByText('Execution history', { exact: true }).waitFor(),
      );
      await visibleText('Partitions').last().click();
      await page.getByText(/\d+ Partitions/).first().waitFor();
      await visibleText('3').last().click();
      await visibleText('24h').last().click();
      await page.getByText('coverage_pct').first().waitFor();
      await settle();
    },
  },
  {
    name: 'check_history',
    what: 'heatmaps_universe_coverage, Execution history: one result per partition',
    async run() {
      await visibleText('Execution history').click();
      await page.getByText('Target materialization').first().waitFor();
      await page.getByText('3|1y').first().waitFor();
      await settle();
    },
  },
  {
    name: 'radar',
    what: 'liquidation_radar, Events: the latest materialization with its top table',
    async run() {
      await open('/assets/liquidation_radar?view=events', () => page.getByText('tier_hot').first().waitFor());
      await page.getByText('[Show Markdown]').first().waitFor();
      await settle();
    },
  },
  {
    name: 'radar_chart',
    what: 'liquidation_radar: the chart picture',
    async run() {
      await page.getByText('[Show Markdown]').first().click();
      await dialogPicture();
      await settle();
    },
  },
  {
    name: 'heatmap_keys_job_launchpad',
    what: 'heatmap_keys_job Launchpad, keys set to "1/12h, 2/180d" (not launched)',
    async run() {
      await open(`/locations/${LOCATION}/jobs/heatmap_keys_job/playground`, () =>
        page.locator('.CodeMirror-line', { hasText: 'keys:' }).first().waitFor(),
      );
      const line = page.locator('.CodeMirror-line', { hasText: /^\s*keys:/ }).first();
      const text = (await line.innerText()).trim();
      if (!text.includes('1/12h')) {
        // select the value after "keys: " and type the example over it
        await line.click();
        await page.keyboard.press('End');
        const value = text.replace(/^keys:\s*/, '');
        for (let i = 0; i < value.length; i += 1) await page.keyboard.press('Shift+ArrowLeft');
        await page.keyboard.type('"1/12h, 2/180d"');
      }
      // the right-hand panel now documents the fields around the cursor, `keys` among them
      await page.getByText(/The model x range keys/).first().waitFor();
      // the config is validated after each edit: wait until it is and Launch Run is enabled again
      await page.getByText('No errors', { exact: true }).first().waitFor();
      await page.locator('button:has-text("Launch Run"):not([disabled])').first().waitFor();
      await settle();
    },
  },
  {
    name: 'sensors',
    what: 'Automation: schedules and sensors, trade_signals_sensor off, its description shown',
    async run() {
      await open('/automation', () => page.getByText('trade_signals_sensor', { exact: true }).waitFor());
      const info = page
        .getByText('trade_signals_sensor', { exact: true })
        .locator('xpath=..')
        .locator('[aria-label="info"]')
        .first();
      await info.hover();
      await page.getByText(/trading is the operator/).first().waitFor();
      await settle();
    },
  },
  {
    name: 'trade_signals_sensor',
    what: 'trade_signals_sensor page: description, target executor_job, Running off',
    async run() {
      await open(`/locations/${LOCATION}/sensors/trade_signals_sensor`, () =>
        page.getByText(/trading is the operator/).first().waitFor(),
      );
      await settle();
    },
  },
  {
    name: 'runs',
    what: "Runs: the demo's four runs",
    async run() {
      await open('/runs', () => page.getByText('heatmap_keys_job').first().waitFor());
      await page.getByText('executor_job').first().waitFor();
      await settle();
    },
  },
];

let failed = 0;
console.log(`screenshots of ${BASE} -> ${OUT}`);
for (const shot of shots) {
  try {
    await shot.run();
    await save(shot.name, shot.what);
  } catch (err) {
    failed += 1;
    problems.push(`${shot.name}: ${String(err.message || err).split('\n')[0]}`);
    await page.screenshot({ path: path.join(profile, `${shot.name}.failed.png`) }).catch(() => {});
    console.error(`  ${shot.name}: FAILED (${String(err.message || err).split('\n')[0]})`);
  }
}
await context.close();

if (problems.length) {
  console.log(`${problems.length} problem(s) seen in the browser:`);
  for (const p of problems) console.log(`  - ${p}`);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`${shots.length - failed}/${shots.length} screenshots in ${seconds}s`);
if (failed) {
  console.error(`failed steps left their last screen in ${profile}`);
  process.exit(1);
}
fs.rmSync(profile, { recursive: true, force: true });
