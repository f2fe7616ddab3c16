// The zquant web client's own service functions against a running gateway.
//
//   ZQ_GATEWAY_URL=http://127.0.0.1:8080 ZQ_WEB_CLIENT_DIR=../shared/zquant-web-client \
//   ZQ_ADMIN_USERNAME=admin ZQ_ADMIN_PASSWORD=… ZQ_SYMBOLS=600036.SH,000002.SZ node run.mjs
//
// services/{auth,users,backtest}.ts are bundled unchanged at run time (esbuild), with
// `@umijs/max` resolved to umi_request.mjs; every response is validated against the client's
// own types from services/typings.d.ts and against the checks its pages make
// (pages/backtest/*.tsx). Prints one JSON document {checks: [{name, ok, detail}]} and exits 1
// when a check failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import Ajv from 'ajv';
import * as esbuild from 'esbuild';

import { typeSchemas } from './typings_schema.mjs';
import { session } from './umi_request.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const clientDir = path.resolve(process.env.ZQ_WEB_CLIENT_DIR);
const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  return process.env[name];
};

async function bundle() {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'zquant-web-client-'));
  const shim = pathToFileURL(path.join(here, 'umi_request.mjs')).href;
  await esbuild.build({
    entryPoints: ['auth', 'users', 'backtest'].map((n) => path.join(clientDir, 'services', `${n}.ts`)),
    outdir, bundle: true, format: 'esm', platform: 'node', logLevel: 'warning',
    // One shared module instance (the session), as umi's request is one for the app.
    plugins: [{ name: 'umi', setup(build) {
      build.onResolve({ filter: /^@umijs\/max$/ }, () => ({ path: shim, external: true }));
    } }],
  });
  const load = (name) => import(pathToFileURL(path.join(outdir, `${name}.js`)).href);
  return { auth: await load('auth'), users: await load('users'), backtest: await load('backtest') };
}

const TYPES = ['Token', 'UserResponse', 'PageResponse', 'APIKeyResponse', 'APIKeyCreateResponse', 'BacktestTaskResponse',
  'BacktestResultResponse', 'PerformanceResponse', 'StrategyResponse'];
// pages/backtest/index.tsx and detail/[id].tsx: the statuses they render.
const STATUS_MAP = ['pending', 'running', 'completed', 'failed'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const checks = [];
function check(name, ok, detail = '') {
  checks.push({ name, ok: Boolean(ok), detail: ok ? '' : String(detail) });
}
let validators;
function conforms(type, value, label) {
  const valid = validators[type](value);
  check(`${label} is a ZQuant.${type}`, valid, JSON.stringify(validators[type].errors));
}
function conformsAll(type, values, label) {
  check(`${label} is a JSON array`, Array.isArray(values), JSON.stringify(values).slice(0, 200));
  for (const [i, v] of (Array.isArray(values) ? values : []).entries()) conforms(type, v, `${label}[${i}]`);
}
const lastStatus = () => session.calls.at(-1).status;
const lastHeaders = () => session.calls.at(-1).headers;
async function rejected(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return error;
  }
}

async function main() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const schemas = typeSchemas(path.join(clientDir, 'services', 'typings.d.ts'), TYPES);
  validators = Object.fromEntries(TYPES.map((t) => [t, ajv.compile(schemas[t])]));
  const { auth, users, backtest } = await bundle();
  session.baseURL = env('ZQ_GATEWAY_URL');
  const symbols = env('ZQ_SYMBOLS').split(',');

  // Login page, then the admin creates a researcher (users.createUser with zquant's UserCreate).
  const adminToken = await auth.login({ username: env('ZQ_ADMIN_USERNAME'), password: env('ZQ_ADMIN_PASSWORD') });
  conforms('Token', adminToken, 'login');
  check('login token_type is bearer', adminToken.token_type === 'bearer', adminToken.token_type);
  session.token = adminToken.access_token;
  const admin = await users.getCurrentUser();
  conforms('UserResponse', admin, 'getCurrentUser (admin)');
  check('the admin has role_id 1', admin.role_id === 1, admin.role_id);
  const username = `web${Date.now() % 1e9}`;
  const password = 'web-client-password-1';
  const created = await users.createUser({ username, email: `${username}@example.com`, password,
    password_confirm: password, role_id: 2 });
  check('createUser answers 201', lastStatus() === 201, lastStatus());
  conforms('UserResponse', created, 'createUser');
  check('the new user has role_id 2', created.role_id === 2, created.role_id);
  const mismatch = await rejected(users.createUser({ username: `${username}x`, email: `${username}x@example.com`,
    password, password_confirm: `${password}!`, role_id: 2 }));
  check('createUser with a different password_confirm is a 400', mismatch?.response?.status === 400,
    mismatch?.response?.status);

  // Admin user management (users.ts): list, get, update (PUT), reset the password.
  const page = await users.getUsers({ skip: 0, limit: 10, username, order_by: 'id', order: 'asc' });
  conforms('PageResponse', page, 'getUsers');
  conformsAll('UserResponse', page.items, 'getUsers().items');
  check('getUsers finds the new user', page.total === 1 && page.items[0]?.id === created.id
    && page.skip === 0 && page.limit === 10, JSON.stringify(page).slice(0, 300));
  conforms('UserResponse', await users.getUser(created.id), 'getUser');
  const renamed = await users.updateUser(created.id, { email: `${username}@example.org`, is_active: true, role_id: 2 });
  check('updateUser is a PUT answered 200', session.calls.at(-1).method === 'PUT' && lastStatus() === 200);
  conforms('UserResponse', renamed, 'updateUser');
  check('updateUser changed the email', renamed.email === `${username}@example.org`, renamed.email);
  const first = await users.resetUserPassword(created.id, { password: `${password}0`, password_confirm: `${password}0` });
  check('resetUserPassword answers {message}', typeof first.message === 'string', JSON.stringify(first));
  const back = await users.resetUserPassword(created.id, { password, password_confirm: password });
  check('resetUserPassword again answers {message}', typeof back.message === 'string');

  const token = await auth.login({ username, password });
  conforms('Token', token, 'login (researcher)');
  const refreshed = await auth.refreshToken(token.refresh_token);
  conforms('Token', refreshed, 'refreshToken');
  check('refreshToken rotates both tokens', refreshed.refresh_token !== token.refresh_token
    && refreshed.access_token !== token.access_token);
  session.token = refreshed.access_token;
  const me = await users.getCurrentUser();
  conforms('UserResponse', me, 'getCurrentUser');
  check('getCurrentUser is the new user', me.username === username && me.id === created.id, me.username);

  // Create page: framework code, templates (all of them, a page, a category).
  const framework = await backtest.getStrategyFramework();
  check('getStrategyFramework returns code', typeof framework.code === 'string' && framework.code.includes('class Strategy'));
  const templates = await backtest.getTemplateStrategies({ limit: 100 });
  conformsAll('StrategyResponse', templates, 'getTemplateStrategies({limit: 100})');
  check('the templates are templates', templates.length >= 1 && templates.every((t) => t.is_template), templates.length);
  const firstPage = await backtest.getTemplateStrategies({ skip: 0, limit: 2 });
  check('getTemplateStrategies({skip: 0, limit: 2}) pages',
    firstPage.length === 2 && firstPage[0].id === templates[0].id, firstPage.length);
  check('X-Total-Count carries the template count', lastHeaders()['x-total-count'] === String(templates.length),
    lastHeaders()['x-total-count']);
  const category = templates[0].category;
  const inCategory = await backtest.getTemplateStrategies({ category });
  check('getTemplateStrategies({category}) filters', inCategory.length >= 1
    && inCategory.every((t) => t.category === category), category);

  // Strategy CRUD.
  const template = templates[0];
  const strategy = await backtest.createStrategy({ name: 'web client strategy', code: template.code,
    description: 'created by the zquant web client', category: 'technical', params_schema: '{}' });
  check('createStrategy answers 201', lastStatus() === 201, lastStatus());
  conforms('StrategyResponse', strategy, 'createStrategy');
  check('the owner may edit and delete it', strategy.can_edit === true && strategy.can_delete === true);
  const strategies = await backtest.getStrategies({ skip: 0, limit: 20, order_by: 'created_at', order: 'desc' });
  conformsAll('StrategyResponse', strategies, 'getStrategies');
  check('getStrategies lists the new strategy', strategies.some((s) => s.id === strategy.id));
  const fetched = await backtest.getStrategy(strategy.id);
  conforms('StrategyResponse', fetched, 'getStrategy');
  const updated = await backtest.updateStrategy(strategy.id, { name: 'renamed by PUT', description: 'v2' });
  check('updateStrategy is a PUT answered 200', session.calls.at(-1).method === 'PUT' && lastStatus() === 200,
    `${session.calls.at(-1).method} ${lastStatus()}`);
  conforms('StrategyResponse', updated, 'updateStrategy');
  check('updateStrategy changed the name only', updated.name === 'renamed by PUT' && updated.code === template.code);

  // Run a backtest the way create.tsx submits it.
  const task = await backtest.runBacktest({
    strategy_code: template.code, strategy_name: 'web client run',
    config: { start_date: '2013-01-04', end_date: '2013-12-31', initial_capital: 1000000, symbols,
      frequency: 'daily', adjust_type: 'qfq', commission_rate: 0.0003, min_commission: 5.0, tax_rate: 0.001,
      slippage_rate: 0.001, benchmark: '000001.SH', use_daily_basic: false },
  });
  check('runBacktest answers 201', lastStatus() === 201, lastStatus());
  conforms('BacktestTaskResponse', task, 'runBacktest');
  check('a new task is pending', task.status === 'pending', task.status);

  // Detail page: poll until the task is finished.
  let current = task;
  const deadline = Date.now() + 90_000;
  while (!TERMINAL.has(current.status) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    current = await backtest.getBacktestTask(task.id);
    check(`getBacktestTask shows a status the pages know (${current.status})`,
      STATUS_MAP.includes(current.status) || current.status === 'cancelled', current.status);
  }
  conforms('BacktestTaskResponse', current, 'getBacktestTask');
  check("the detail page's condition holds: status === 'completed'", current.status === 'completed',
    `${current.status}: ${current.error_message}`);
  check('the task has its dates', current.start_date === '2013-01-04' && current.end_date === '2013-12-31'
    && Boolean(current.started_at) && Boolean(current.completed_at));
  const result = await backtest.getBacktestResult(task.id);
  conforms('BacktestResultResponse', result, 'getBacktestResult');
  check('the result is the task\'s', result.task_id === task.id && typeof result.total_return === 'number');
  check('metrics_json and trades_json are JSON', typeof JSON.parse(result.metrics_json) === 'object'
    && Array.isArray(JSON.parse(result.trades_json)));
  const performance = await backtest.getPerformance(task.id);
  conforms('PerformanceResponse', performance, 'getPerformance');
  const { portfolio } = performance;
  check('performance.portfolio has cash, total_value and positions', typeof portfolio.cash === 'number'
    && typeof portfolio.total_value === 'number' && typeof portfolio.positions === 'object', JSON.stringify(portfolio));
  const positions = Object.values(portfolio.positions);
  check('portfolio positions carry zquant\'s fields', positions.every((p) => ['quantity', 'avg_cost',
    'current_price', 'market_value', 'profit', 'profit_pct'].every((k) => typeof p[k] === 'number')),
  JSON.stringify(positions[0]));
  check('trade quantities are JSON numbers', performance.trades.length > 0
    && performance.trades.every((t) => typeof t.quantity === 'number'), JSON.stringify(performance.trades[0]));
  check('metrics: total_return as on the result', performance.metrics.total_return === result.total_return);

  // List page (ProTable: skip/limit from the pager, order_by/order from the sorter).
  for (const [orderBy, order] of [['created_at', 'desc'], ['name', 'asc'], ['status', 'desc'], ['id', 'asc']]) {
    const rows = await backtest.getBacktestTasks({ skip: 0, limit: 20, order_by: orderBy, order });
    conformsAll('BacktestTaskResponse', rows, `getBacktestTasks(${orderBy} ${order})`);
    check(`getBacktestTasks(${orderBy} ${order}) lists the task with a known status`,
      rows.some((t) => t.id === task.id) && rows.every((t) => STATUS_MAP.includes(t.status)));
  }
  const missing = await rejected(backtest.getBacktestTask(2_000_000_000));
  check('a missing task rejects with 404', missing?.response?.status === 404, missing?.response?.status);

  // API keys.
  const key = await users.createAPIKey({ name: 'web client' });
  check('createAPIKey answers 201', lastStatus() === 201, lastStatus());
  conforms('APIKeyCreateResponse', key, 'createAPIKey');
  check('createAPIKey returns an access/secret pair', key.access_key.startsWith('zqk_') && key.secret_key.length >= 40
    && key.is_active === true && typeof key.message === 'string');
  const byKey = await fetch(`${session.baseURL}/api/v1/users/me`,
    { headers: { 'X-API-Key': key.access_key, 'X-API-Secret': key.secret_key } });
  check('the key pair authenticates', byKey.status === 200 && (await byKey.json()).username === username);
  const keys = await users.getAPIKeys();
  conformsAll('APIKeyResponse', keys, 'getAPIKeys');
  check('getAPIKeys lists the key without its secret', keys.some((k) => k.id === key.id)
    && !JSON.stringify(keys).includes(key.secret_key));
  const revoked = await users.deleteAPIKey(key.id);
  check('deleteAPIKey answers {message}', lastStatus() === 200 && typeof revoked.message === 'string', lastStatus());

  // Delete the strategy: 204, then it is gone.
  const deleted = await backtest.deleteStrategy(strategy.id);
  check('deleteStrategy answers 204 with no body', lastStatus() === 204 && deleted === '', lastStatus());
  const gone = await rejected(backtest.getStrategy(strategy.id));
  check('a deleted strategy is a 404', gone?.response?.status === 404, gone?.response?.status);

  const bye = await auth.logout();
  check('logout answers {message}', typeof bye.message === 'string', JSON.stringify(bye));

  // The admin deletes a second user (users.deleteUser): {message}, then the user is gone.
  session.token = adminToken.access_token;
  const doomed = await users.createUser({ username: `${username}d`, email: `${username}d@example.com`, password,
    password_confirm: password, role_id: 2 });
  const removed = await users.deleteUser(doomed.id);
  check('deleteUser answers {message}', lastStatus() === 200 && typeof removed.message === 'string');
  const absent = await rejected(users.getUser(doomed.id));
  check('a deleted user is a 404', absent?.response?.status === 404, absent?.response?.status);
  const locked = await rejected(auth.login({ username: `${username}d`, password }));
  check('a deleted user cannot log in', locked?.response?.status === 401, locked?.response?.status);
}

try {
  await main();
} catch (error) {
  check('the scenario ran to the end', false, `${error.stack}\n${JSON.stringify(error.response ?? '')}`);
}
console.log(JSON.stringify({ checks, calls: session.calls.length }));
process.exit(checks.every((c) => c.ok) ? 0 : 1);
