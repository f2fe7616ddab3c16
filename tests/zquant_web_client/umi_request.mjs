// Stands in for `import { request } from '@umijs/max'` when the client's services are bundled:
// umi's request (axios underneath) as the zquant app configures it — `params` become the query
// string, `data` a JSON body, the stored access token an `Authorization: Bearer` header (the
// app's request interceptor); a non-2xx answer rejects with `error.response` {status, data};
// an empty body (204) resolves to ''.
export const session = { baseURL: '', token: '', calls: [] };

export async function request(url, options = {}) {
  const { method = 'GET', params, data, headers = {} } = options;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null) query.append(key, String(value));
  }
  const full = session.baseURL + url + (query.size ? `?${query}` : '');
  const sent = { ...headers };
  if (session.token) sent.Authorization = `Bearer ${session.token}`;
  let body;
  if (data !== undefined) {
    body = JSON.stringify(data);
    sent['Content-Type'] = 'application/json';
  }
  const response = await fetch(full, { method, headers: sent, body });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : '';
  session.calls.push({ method, url: full, status: response.status, headers: Object.fromEntries(response.headers) });
  if (response.status < 200 || response.status > 299) {
    const error = new Error(`Request failed with status code ${response.status}`);
    error.response = { status: response.status, data: parsed };
    throw error;
  }
  return parsed;
}
