/**
 * The REST API as the e2e tests call it beside the browser: one request in the contract's envelope,
 * its `data` on success, an error naming the route and the error otherwise.
 */
export async function callApi<T>(baseUrl: string, token: string | undefined, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${baseUrl}/api/v1${route}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const envelope = (await res.json()) as { success: boolean; data: T; error?: unknown }
  if (!envelope.success) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(envelope.error)}`)
  return envelope.data
}
